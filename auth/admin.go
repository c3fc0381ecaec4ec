package auth

// IsAdmin reports whether p is an administrator: a user named in
// Config.Admins, directly or through a group, however it authenticated
// (a bearer token's subject shares the user namespace, as for Allowed).
// Anonymous is never an admin. It gates what is not a repository's
// business, such as /metrics with metrics.access "admin".
func (s *Service) IsAdmin(p Principal) bool {
	return !p.Anonymous() && s.policy.isAdmin(p.Name)
}

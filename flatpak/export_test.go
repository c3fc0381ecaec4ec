package flatpak

// AppstreamParses is how many times h parsed AppStream data for
// .flatpakref files.
func AppstreamParses(h *Handler) int {
	h.apps.mu.Lock()
	defer h.apps.mu.Unlock()
	return h.apps.parses
}

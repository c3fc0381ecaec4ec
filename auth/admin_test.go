package auth

import "testing"

func TestIsAdmin(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		p    Principal
		want bool
	}{
		{Principal{Name: "root", Method: MethodBasic}, true},
		{Principal{Name: "eve", Method: MethodBasic}, true}, // through group ops
		{Principal{Name: "eve", Method: MethodCert}, true},
		{Principal{Name: "alice", Method: MethodBasic}, false},
		{Principal{Name: "ops", Method: MethodBasic}, false}, // a group name is not a user
		{Principal{Name: "group:ops", Method: MethodBasic}, false},
		{Principal{Method: MethodAnonymous}, false},
	}
	for _, tc := range tests {
		if got := f.svc.IsAdmin(tc.p); got != tc.want {
			t.Errorf("IsAdmin(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	// Through the real authenticators: Basic and an own token.
	p, err := f.svc.Authenticate(request(basic("root", f.pass["root"])))
	if err != nil || !f.svc.IsAdmin(p) {
		t.Errorf("root over Basic: %v, admin %v", err, f.svc.IsAdmin(p))
	}
	p, err = f.bearer(f.token("eve", authnHtpasswd))
	if err != nil || !f.svc.IsAdmin(p) {
		t.Errorf("eve with a token: %v, admin %v", err, f.svc.IsAdmin(p))
	}
	p, err = f.svc.Authenticate(request(basic("alice", f.pass["alice"])))
	if err != nil || f.svc.IsAdmin(p) {
		t.Errorf("alice over Basic: %v, admin %v", err, f.svc.IsAdmin(p))
	}
}

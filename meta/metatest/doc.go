// Package metatest is the contract every meta.Store backend must pass.
//
// A backend's test calls Run with a factory for fresh, empty stores:
//
//	func TestStore(t *testing.T) {
//		metatest.Run(t, func(t *testing.T) meta.Store {
//			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "meta.db"), nil)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Behaviour the suite does not check is not promised. Conventions the suite
// fixes, beyond the doc comments in package meta:
//
//   - Empty and nil maps are the same: a backend may return either for
//     Annotations and Labels when there are none; likewise nil and empty Refs
//     and upload State.
//   - Times round-trip as instants (time.Time.Equal), at nanosecond
//     precision; their location is not kept. A zero Created stays zero.
//   - Tags, Repositories and Referrers return a non-nil slice, empty when
//     there is nothing to list, so that JSON encodes [] and not null.
//   - Tags and Repositories: n < 0 means no limit, n == 0 returns an empty
//     list. Order is byte order (Go string comparison), not a locale's.
//   - Referrers of an unknown repository or subject is an empty list.
//   - Upload sessions do not create repositories; LinkBlob and a successful
//     PutManifest do.
//   - Every error that matches a meta sentinel is wrapped with context (its
//     message is not just the sentinel's).
//   - Methods called after Close return an error; Close may be called twice.
package metatest

package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/internal/sqlstore"
	"github.com/berth-dev/berth/meta/internal/sqlutil"
)

func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "meta.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// blobRow reports whether d has a blob row: nil, or meta.ErrBlobNotFound.
func blobRow(t *testing.T, s *Store, d digest.Digest) error {
	t.Helper()
	var n int
	if err := s.r.DB.QueryRowContext(t.Context(), "SELECT count(*) FROM blobs WHERE digest = ?", string(d)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return meta.ErrBlobNotFound
	}
	return nil
}

// holdWriter starts a write that blocks until release is closed, and
// returns once it runs: writes made meanwhile queue for one group.
func holdWriter(t *testing.T, s *Store) (release chan struct{}, done chan error) {
	t.Helper()
	release, done, running := make(chan struct{}), make(chan error, 1), make(chan struct{})
	go func() {
		done <- s.write(context.Background(), func(*sqlstore.Tx) error {
			close(running)
			<-release
			return nil
		})
	}()
	<-running
	return release, done
}

// waitQueued waits until n writes wait in the queue.
func waitQueued(s *Store, n int) {
	for {
		s.group.mu.Lock()
		q := len(s.group.queue)
		s.group.mu.Unlock()
		if q >= n {
			return
		}
		runtime.Gosched()
	}
}

// TestGroupCommit: writes queued while another runs commit together, each
// with its own outcome: a write that fails is rolled back alone, a write
// whose caller went away before its turn is skipped, the rest commit.
func TestGroupCommit(t *testing.T) {
	s := openInternal(t)
	release, held := holdWriter(t, s)

	const n = 12
	errs := make([]error, n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		d := digest.FromString(fmt.Sprint("blob-", i))
		wctx := context.Background()
		if i == 7 {
			wctx = ctx // its caller goes away before its turn
		}
		wg.Go(func() {
			errs[i] = s.write(wctx, func(tx *sqlstore.Tx) error {
				if _, err := tx.Exec(wctx, queries.InsertBlob, string(d), 10, sqlutil.Now()); err != nil {
					return err
				}
				if i == 3 {
					return errors.New("write 3 fails after its insert")
				}
				return nil
			})
		})
		waitQueued(s, i+1) // queue in order
	}
	cancel()
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		d := digest.FromString(fmt.Sprint("blob-", i))
		statErr := blobRow(t, s, d)
		switch i {
		case 3:
			if err == nil || !errors.Is(statErr, meta.ErrBlobNotFound) {
				t.Errorf("write 3: err %v, blob row %v; want its error and no row", err, statErr)
			}
		case 7:
			if !errors.Is(err, context.Canceled) || !errors.Is(statErr, meta.ErrBlobNotFound) {
				t.Errorf("write 7: err %v, blob row %v; want context.Canceled and no row", err, statErr)
			}
		default:
			if err != nil || statErr != nil {
				t.Errorf("write %d: err %v, blob row %v; want committed", i, err, statErr)
			}
		}
	}
	if got := s.group.commits.Load(); got != 2 {
		t.Errorf("%d commits for the held write and %d queued ones, want 2", got, n)
	}
}

// TestGroupCommitFailedGroup: a failure that ends the transaction (here
// a savepoint released twice, standing for SQLite rolling back on a full
// disk) fails every write of the group, and commits none of them.
func TestGroupCommitFailedGroup(t *testing.T) {
	s := openInternal(t)
	release, held := holdWriter(t, s)
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		d := digest.FromString(fmt.Sprint("blob-", i))
		wg.Go(func() {
			errs[i] = s.write(context.Background(), func(tx *sqlstore.Tx) error {
				if _, err := tx.Exec(context.Background(), queries.InsertBlob, string(d), 10, sqlutil.Now()); err != nil {
					return err
				}
				if i == 2 {
					// Ends the transaction under the group's feet.
					if _, err := tx.Tx.ExecContext(tx.Context(), "ROLLBACK"); err != nil {
						return err
					}
					return errors.New("write 2 failed and the transaction is gone")
				}
				return nil
			})
		})
		waitQueued(s, i+1)
	}
	close(release)
	wg.Wait()
	<-held
	for i, err := range errs {
		if err == nil {
			t.Errorf("write %d succeeded in a group whose transaction was lost", i)
		}
		if statErr := blobRow(t, s, digest.FromString(fmt.Sprint("blob-", i))); !errors.Is(statErr, meta.ErrBlobNotFound) {
			t.Errorf("write %d: its row exists (%v) although the group failed", i, statErr)
		}
	}
	// The store goes on.
	if err := s.LinkBlob(t.Context(), "app", digest.FromString("after"), 5); err != nil {
		t.Fatalf("a write after the failed group: %v", err)
	}
}

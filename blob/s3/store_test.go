package s3_test

import (
	"context"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/blob/blobtest"
	"github.com/berth-dev/berth/blob/s3"
	"github.com/berth-dev/berth/internal/testenv/s3test"
)

func TestMain(m *testing.M) { s3test.Main(m) }

// stores maps a Store to what it was opened with, for Reopen and
// Leftovers.
type opened struct {
	srv    s3test.Server
	bucket string
	prefix string
}

var openedBy = map[blob.Store]opened{}

func newStore(t *testing.T, o opened) *s3.Store {
	t.Helper()
	s, err := s3.New(t.Context(), s3.Options{
		Endpoint: o.srv.Endpoint, Region: "us-east-1", Bucket: o.bucket, Prefix: o.prefix,
		AccessKey: o.srv.AccessKey, SecretKey: o.srv.SecretKey, PathStyle: true,
		PartSize: 5 << 20, // the minimum: the suite's large blob takes several parts
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	openedBy[s] = o
	return s
}

// TestBlobtest runs the driver suite on MinIO, with a key prefix.
func TestBlobtest(t *testing.T) {
	blobtest.RunFactory(t, blobtest.Factory{
		New: func(t *testing.T) blob.Store {
			srv, bucket := s3test.Bucket(t)
			return newStore(t, opened{srv, bucket, "registry/"})
		},
		Reopen: func(t *testing.T, s blob.Store) blob.Store {
			return newStore(t, openedBy[s])
		},
		Leftovers: func(t *testing.T, s blob.Store) []string {
			o := openedBy[s]
			c, err := s3test.Client(o.srv)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for oi := range c.ListObjects(context.Background(), o.bucket, minio.ListObjectsOptions{Recursive: true}) {
				if oi.Err != nil {
					t.Fatal(oi.Err)
				}
				if !strings.HasPrefix(oi.Key, o.prefix+"blobs/") {
					out = append(out, oi.Key)
				}
			}
			for mu := range c.ListIncompleteUploads(context.Background(), o.bucket, "", true) {
				out = append(out, "multipart:"+mu.Key)
			}
			return out
		},
	})
}

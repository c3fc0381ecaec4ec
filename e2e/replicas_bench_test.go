package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to read pg_stat_statements

	"github.com/berth-dev/berth/bench"
	"github.com/berth-dev/berth/internal/testenv/pgtest"
	"github.com/berth-dev/berth/internal/testenv/s3test"
)

// countingS3 stands between the replicas and MinIO and counts requests.
type countingS3 struct {
	*httptest.Server
	n atomic.Int64
}

func newCountingS3(b *testing.B, endpoint string) *countingS3 {
	target, _ := url.Parse(endpoint)
	c := &countingS3{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(c.Close)
	return c
}

// sqlCalls is the number of statements the database has run
// (pg_stat_statements).
func sqlCalls(b *testing.B, db *sql.DB) int64 {
	var n sql.NullInt64
	if err := db.QueryRow(`SELECT sum(calls) FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n.Int64
}

// BenchmarkReplicas measures the scale-out topology (PostgreSQL, MinIO,
// the replicas behind the round-robin balancer) with 1 and 3 replicas:
// small-image pushes, big-blob pushes and pulls, manifest GETs, through the
// balancer with the project's load tool; and, pushing and pulling one small
// image at a time, the S3 requests and SQL statements each costs (counted
// by a proxy before MinIO and by pg_stat_statements).
//
//	go test ./e2e -run '^$' -bench Replicas -benchtime 1x
func BenchmarkReplicas(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			dsn := pgtest.DSN(b)
			srv, bucket := s3test.Bucket(b)
			s3 := newCountingS3(b, srv.Endpoint)
			env := []string{
				"BERTH_METADATA_POSTGRES_DSN=" + dsn,
				"BERTH_STORAGE_S3_ENDPOINT=" + s3.URL,
				"BERTH_STORAGE_S3_REGION=us-east-1",
				"BERTH_STORAGE_S3_BUCKET=" + bucket,
				"BERTH_STORAGE_S3_ACCESS_KEY=" + srv.AccessKey,
				"BERTH_STORAGE_S3_SECRET_KEY=" + srv.SecretKey,
				"BERTH_STORAGE_S3_PATH_STYLE=true",
				"BERTH_LOG_LEVEL=warn",
			}
			var addrs []string
			for range n {
				addrs = append(addrs, startServer(b, env...).Addr)
			}
			lb := newRoundRobin(b, addrs...)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
				b.Fatal(err)
			}

			// Per operation: one small image pushed, then pulled, 50 times.
			p := &pusher{c: httpClient(), base: func() string { return lb.URL }}
			const images = 50
			var s3Push, sqlPush, s3Pull, sqlPull int64
			for i := range images {
				img := makeTestImage("bench/count", fmt.Sprint("v", i), []byte(fmt.Sprintf(`{"i":%d}`, i)),
					[]byte(fmt.Sprintf("layer %d of the counted pushes", i)))
				s0, q0 := s3.n.Load(), sqlCalls(b, db)
				if err := pushAll(p, img, false); err != nil {
					b.Fatal(err)
				}
				s1, q1 := s3.n.Load(), sqlCalls(b, db)
				if err := p.verify(img); err != nil {
					b.Fatal(err)
				}
				s2, q2 := s3.n.Load(), sqlCalls(b, db)
				// Each sqlCalls is itself one statement.
				s3Push, sqlPush = s3Push+s1-s0, sqlPush+q1-q0-1
				s3Pull, sqlPull = s3Pull+s2-s1, sqlPull+q2-q1-1
			}
			b.ReportMetric(float64(s3Push)/images, "s3-requests/push")
			b.ReportMetric(float64(sqlPush)/images, "sql-statements/push")
			b.ReportMetric(float64(s3Pull)/images, "s3-requests/pull")
			b.ReportMetric(float64(sqlPull)/images, "sql-statements/pull")

			c, err := bench.NewClient(lb.URL, 32)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			sizes := bench.Default()
			sizes.BlobSize, sizes.BlobsPerStr, sizes.SmallImages = 64<<20, 1, 300
			sizes.Duration = 3 * time.Second
			r := &bench.Runner{C: c, Sizes: sizes, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			for range b.N {
				for _, sc := range []string{"push-small", "push-mono", "pull", "manifest-get"} {
					res, err := r.Scenario(context.Background(), sc)
					if err != nil {
						b.Fatalf("%s: %v", sc, err)
					}
					unit := res.Unit
					if unit == "/s" {
						unit = "ops/s"
					}
					b.ReportMetric(res.Value, sc+"-"+unit)
				}
			}
		})
	}
}

package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// image is a small image ready to push: config, one layer, manifest.
type image struct {
	cfg, layer, man []byte
}

func newImage(id string, labels map[string]string, layerSize int) image {
	cfg := imageConfig(id, labels)
	layer := smallBlob("layer-"+id, layerSize)
	return image{cfg: cfg, layer: layer, man: manifest(cfg, "", layer)}
}

// push pushes the image's blobs and its manifest under ref (5 requests).
func (c *Client) push(ctx context.Context, repo, ref string, im image) (int, int64, error) {
	for _, b := range [][]byte{im.cfg, im.layer} {
		if _, err := c.PushBytes(ctx, repo, b); err != nil {
			return 0, 0, err
		}
	}
	if err := c.PutManifest(ctx, repo, ref, im.man); err != nil {
		return 4, 0, err
	}
	return 5, int64(len(im.cfg) + len(im.layer) + len(im.man)), nil
}

// bigBlobs are the ids of the big blobs pushed so far (pull reuses them).
type bigBlob struct {
	id   string
	dgst Digest
}

const bigRepo = "bench/big"

// bigPush is the big blob push with chunk bytes per PATCH (0: monolithic).
func (r *Runner) bigPush(ctx context.Context, streams int, chunk int64) (Result, error) {
	s := r.Sizes
	n := streams * s.BlobsPerStr
	blobs := make([]bigBlob, n)
	for i := range blobs {
		id := r.uid("big")
		blobs[i] = bigBlob{id, genDigest(id, s.BlobSize)}
	}
	t, err := r.load(ctx, streams, n, s.MaxTime, func(ctx context.Context, _, i int) (int, int64, error) {
		b := blobs[i]
		body := newGen(b.id, s.BlobSize)
		if chunk == 0 {
			return 2, s.BlobSize, r.C.PushMonolithic(ctx, bigRepo, b.dgst, body, s.BlobSize)
		}
		q, err := r.C.PushChunked(ctx, bigRepo, b.dgst, body, s.BlobSize, chunk)
		return q, s.BlobSize, err
	})
	res := t.result("MiB/s")
	addExtra(&res, "per_stream_mib_s", res.Value/float64(streams))
	if err == nil {
		r.bigs = append(r.bigs, blobs...)
	}
	return res, err
}

func addExtra(res *Result, k string, v float64) {
	if res.Extra == nil {
		res.Extra = map[string]float64{}
	}
	res.Extra[k] = v
}

func (r *Runner) pushMono(ctx context.Context) (Result, error) {
	return r.bigPush(ctx, r.Sizes.Streams, 0)
}
func (r *Runner) pushOne(ctx context.Context) (Result, error) { return r.bigPush(ctx, 1, 0) }
func (r *Runner) pushChunked(ctx context.Context) (Result, error) {
	return r.bigPush(ctx, r.Sizes.Streams, r.Sizes.ChunkSize)
}

// pushSmall: many clients push small images (config + layer + manifest),
// each client into its own repository.
func (r *Runner) pushSmall(ctx context.Context) (Result, error) {
	s := r.Sizes
	ims := make([]image, s.SmallImages)
	for i := range ims {
		ims[i] = newImage(r.uid("small"), nil, s.SmallLayer)
	}
	t, err := r.load(ctx, s.Workers, len(ims), s.MaxTime, func(ctx context.Context, w, i int) (int, int64, error) {
		return r.C.push(ctx, fmt.Sprintf("bench/small-%d", w), fmt.Sprintf("i%d", i), ims[i])
	})
	return t.result("/s"), err
}

// pull: big blob GETs on Streams streams (blobs the push scenarios left,
// else one pushed now).
func (r *Runner) pull(ctx context.Context) (Result, error) {
	s := r.Sizes
	if len(r.bigs) == 0 {
		id := r.uid("big")
		b := bigBlob{id, genDigest(id, s.BlobSize)}
		if err := r.C.PushMonolithic(ctx, bigRepo, b.dgst, newGen(id, s.BlobSize), s.BlobSize); err != nil {
			return Result{}, fmt.Errorf("preparing: %w", err)
		}
		r.bigs = append(r.bigs, b)
	}
	bufs := make([][]byte, s.Streams)
	for i := range bufs {
		bufs[i] = make([]byte, 256<<10)
	}
	t, err := r.load(ctx, s.Streams, s.Streams*s.BlobsPerStr, s.MaxTime, func(ctx context.Context, w, i int) (int, int64, error) {
		b := r.bigs[i%len(r.bigs)]
		n, _, err := r.C.Get(ctx, "/v2/"+bigRepo+"/blobs/"+string(b.dgst), bufs[w], nil)
		if err == nil && n != s.BlobSize {
			err = fmt.Errorf("blob %s: got %d bytes, want %d", b.dgst, n, s.BlobSize)
		}
		return 1, n, err
	})
	res := t.result("MiB/s")
	addExtra(&res, "per_stream_mib_s", res.Value/float64(s.Streams))
	return res, err
}

// ensureImage pushes image im as repo:tag once per runner.
func (r *Runner) ensureImage(ctx context.Context, repo, tag string, im image) error {
	key := repo + ":" + tag
	if r.repos[key] {
		return nil
	}
	if _, _, err := r.C.push(ctx, repo, tag, im); err != nil {
		return fmt.Errorf("preparing %s: %w", key, err)
	}
	r.repos[key] = true
	return nil
}

// manifestPut: manifests that differ by an annotation, PUT by new tags,
// their blobs already in the repository.
func (r *Runner) manifestPut(ctx context.Context) (Result, error) {
	s := r.Sizes
	const repo = "bench/manifests"
	im := newImage(r.uid("mput"), nil, s.SmallLayer)
	if err := r.ensureImage(ctx, repo, "base", im); err != nil {
		return Result{}, err
	}
	mans := make([][]byte, s.ManifestPuts)
	pre := r.uid("m")
	for i := range mans {
		mans[i] = manifest(im.cfg, fmt.Sprintf("%s-%d", pre, i), im.layer)
	}
	t, err := r.load(ctx, s.Workers, len(mans), s.MaxTime, func(ctx context.Context, _, i int) (int, int64, error) {
		return 1, int64(len(mans[i])), r.C.PutManifest(ctx, repo, fmt.Sprintf("%s-%d", pre, i), mans[i])
	})
	return t.result("/s"), err
}

var acceptManifest = map[string]string{"Accept": mediaManifest + ", application/vnd.oci.image.index.v1+json"}

// manifestGet: GET of one manifest by tag.
func (r *Runner) manifestGet(ctx context.Context) (Result, error) {
	s := r.Sizes
	const repo = "bench/get"
	if err := r.ensureImage(ctx, repo, "latest", newImage(r.uid("get"), nil, s.SmallLayer)); err != nil {
		return Result{}, err
	}
	bufs := buffers(s.Workers, 16<<10)
	t, err := r.load(ctx, s.Workers, -1, s.Duration, func(ctx context.Context, w, _ int) (int, int64, error) {
		n, _, err := r.C.Get(ctx, "/v2/"+repo+"/manifests/latest", bufs[w], acceptManifest)
		return 1, n, err
	})
	return t.result("/s"), err
}

func buffers(n, size int) [][]byte {
	b := make([][]byte, n)
	for i := range b {
		b[i] = make([]byte, size)
	}
	return b
}

// blobHead: HEAD of layers of a repository holding Images images.
func (r *Runner) blobHead(ctx context.Context) (Result, error) {
	s := r.Sizes
	const repo = "bench/heads"
	ims := make([]image, s.Images)
	for i := range ims {
		ims[i] = newImage(r.uid("head"), nil, 1<<10)
	}
	if _, err := r.load(ctx, s.Workers, len(ims), time.Hour, func(ctx context.Context, _, i int) (int, int64, error) {
		return r.C.push(ctx, repo, fmt.Sprintf("h%d", i), ims[i])
	}); err != nil {
		return Result{}, fmt.Errorf("preparing %d images: %w", len(ims), err)
	}
	rngs := make([]*rand.Rand, s.Workers)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), 7))
	}
	t, err := r.load(ctx, s.Workers, -1, s.Duration, func(ctx context.Context, w, _ int) (int, int64, error) {
		im := ims[rngs[w].IntN(len(ims))]
		return 1, 0, r.C.Head(ctx, "/v2/"+repo+"/blobs/"+string(digestOf(im.layer)))
	})
	return t.result("/s"), err
}

// hotPull: HotWorkers clients pull the same image (manifest, config,
// layer) again and again.
func (r *Runner) hotPull(ctx context.Context) (Result, error) {
	s := r.Sizes
	const repo = "bench/hot"
	im := newImage(r.uid("hot"), nil, int(s.HotBlobSize))
	if err := r.ensureImage(ctx, repo, "latest", im); err != nil {
		return Result{}, err
	}
	bufs := buffers(s.HotWorkers, 256<<10)
	paths := []string{"/v2/" + repo + "/blobs/" + string(digestOf(im.cfg)), "/v2/" + repo + "/blobs/" + string(digestOf(im.layer))}
	t, err := r.load(ctx, s.HotWorkers, -1, s.Duration, func(ctx context.Context, w, _ int) (int, int64, error) {
		total, _, err := r.C.Get(ctx, "/v2/"+repo+"/manifests/latest", bufs[w], acceptManifest)
		if err != nil {
			return 1, total, err
		}
		for _, p := range paths {
			n, _, err := r.C.Get(ctx, p, bufs[w], nil)
			total += n
			if err != nil {
				return 3, total, err
			}
		}
		if want := int64(len(im.man) + len(im.cfg) + len(im.layer)); total != want {
			return 3, total, fmt.Errorf("pulled %d bytes, want %d", total, want)
		}
		return 3, total, nil
	})
	return t.result("MiB/s"), err
}

// tagPut: one manifest PUT under Tags new tags.
func (r *Runner) tagPut(ctx context.Context) (Result, error) {
	s := r.Sizes
	const repo = "bench/tags"
	im := newImage(r.uid("tags"), nil, s.SmallLayer)
	if err := r.ensureImage(ctx, repo, "base", im); err != nil {
		return Result{}, err
	}
	pre := r.uid("t")
	t, err := r.load(ctx, s.Workers, s.Tags, s.MaxTime, func(ctx context.Context, _, i int) (int, int64, error) {
		return 1, int64(len(im.man)), r.C.PutManifest(ctx, repo, fmt.Sprintf("%s-%d", pre, i), im.man)
	})
	return t.result("/s"), err
}

const srcRepo = "bench/src"

// source is the image repositories are made from by mounting.
func (r *Runner) source(ctx context.Context) (image, error) {
	if r.src.man == nil {
		im := newImage(r.uid("src"), nil, r.Sizes.SmallLayer)
		if err := r.ensureImage(ctx, srcRepo, "latest", im); err != nil {
			return image{}, err
		}
		r.src = im
	}
	return r.src, nil
}

// createRepo makes repo by mounting the source image's blobs and putting
// its manifest (3 requests when the registry mounts).
func (r *Runner) createRepo(ctx context.Context, repo string, im image) (int, int64, error) {
	reqs := 0
	for _, b := range [][]byte{im.cfg, im.layer} {
		q, err := r.C.Mount(ctx, repo, srcRepo, digestOf(b), b)
		reqs += q
		if err != nil {
			return reqs, 0, err
		}
	}
	return reqs + 1, int64(len(im.man)), r.C.PutManifest(ctx, repo, "latest", im.man)
}

// catalog: full listings of /v2/_catalog (pages of 1000), the registry
// holding at least Repos repositories (made by mounting).
func (r *Runner) catalog(ctx context.Context) (Result, error) {
	s := r.Sizes
	im, err := r.source(ctx)
	if err != nil {
		return Result{}, err
	}
	have, _, err := r.C.Catalog(ctx, 1000)
	if err != nil {
		return Result{}, fmt.Errorf("preparing: %w", err)
	}
	if missing := s.Repos - len(have); missing > 0 {
		pre := r.uid("")
		if _, err := r.load(ctx, s.Workers, missing, time.Hour, func(ctx context.Context, _, i int) (int, int64, error) {
			return r.createRepo(ctx, fmt.Sprintf("bench/cat/r%s-%04d", pre, i), im)
		}); err != nil {
			return Result{}, fmt.Errorf("preparing %d repositories: %w", missing, err)
		}
	}
	want := max(s.Repos, len(have))
	t, err := r.load(ctx, s.Workers, -1, s.Duration, func(ctx context.Context, _, _ int) (int, int64, error) {
		names, q, err := r.C.Catalog(ctx, 1000)
		if err == nil && len(names) < want {
			err = fmt.Errorf("catalog lists %d repositories, want %d", len(names), want)
		}
		return q, 0, err
	})
	res := t.result("/s")
	addExtra(&res, "repositories", float64(want))
	return res, err
}

// repoCreate: new repositories, each by two blob mounts and a manifest PUT.
func (r *Runner) repoCreate(ctx context.Context) (Result, error) {
	s := r.Sizes
	im, err := r.source(ctx)
	if err != nil {
		return Result{}, err
	}
	pre := r.uid("")
	t, err := r.load(ctx, s.Workers, s.RepoCreates, s.MaxTime, func(ctx context.Context, _, i int) (int, int64, error) {
		return r.createRepo(ctx, fmt.Sprintf("bench/new/r%s-%d", pre, i), im)
	})
	return t.result("/s"), err
}

// appID is Flatpak app i's id.
func appID(i int) string { return fmt.Sprintf("org.bench.App%04d", i) }

func appRepo(i int) string { return fmt.Sprintf("apps/app%04d", i) }

// ensureApps pushes Apps Flatpak apps (one repository each, tag latest).
func (r *Runner) ensureApps(ctx context.Context) error {
	if r.apps {
		return nil
	}
	s := r.Sizes
	if _, err := r.load(ctx, s.Workers, s.Apps, time.Hour, func(ctx context.Context, _, i int) (int, int64, error) {
		return r.C.push(ctx, appRepo(i), "latest", newImage(appID(i), flatpakLabels(appID(i)), 1<<10))
	}); err != nil {
		return fmt.Errorf("preparing %d Flatpak apps: %w", s.Apps, err)
	}
	var idx struct {
		Results []struct {
			Name   string
			Images []struct{ Tags []string }
		}
	}
	if _, err := r.C.GetJSON(ctx, "/index/static?"+indexQuery, &idx); err != nil {
		return fmt.Errorf("preparing: %w", err)
	}
	n := 0
	for _, repo := range idx.Results {
		n += len(repo.Images)
	}
	if n < s.Apps {
		return fmt.Errorf("preparing: the Flatpak index lists %d images, want %d", n, s.Apps)
	}
	r.apps = true
	return nil
}

const indexQuery = "label%3Aorg.flatpak.ref%3Aexists=1&architecture=amd64&os=linux&tag=latest"

var gzipHeader = map[string]string{"Accept-Encoding": "gzip"}

// reader is one kind of catalogue read: its path for request i.
type reader struct {
	name string
	path func(i int) string
	hdr  map[string]string
}

func (r *Runner) readers() []reader {
	return []reader{
		{name: "catalogue", path: func(int) string { return "/" }},
		{name: "search", path: func(i int) string {
			return "/api/v1/search?q=" + url.QueryEscape(appID(i%r.Sizes.Apps))
		}},
		{name: "index", path: func(int) string { return "/index/static?" + indexQuery }, hdr: gzipHeader},
	}
}

// readScenario: Workers clients repeat one kind of read for Duration.
func (r *Runner) readScenario(ctx context.Context, rd reader) (Result, error) {
	s := r.Sizes
	if err := r.ensureApps(ctx); err != nil {
		return Result{}, err
	}
	bufs := buffers(s.Workers, 64<<10)
	t, err := r.load(ctx, s.Workers, -1, s.Duration, func(ctx context.Context, w, i int) (int, int64, error) {
		n, _, err := r.C.Get(ctx, rd.path(i), bufs[w], rd.hdr)
		return 1, n, err
	})
	return t.result("/s"), err
}

func (r *Runner) flatpakIndex(ctx context.Context) (Result, error) {
	return r.readScenario(ctx, r.readers()[2])
}
func (r *Runner) search(ctx context.Context) (Result, error) {
	return r.readScenario(ctx, r.readers()[1])
}
func (r *Runner) cataloguePage(ctx context.Context) (Result, error) {
	return r.readScenario(ctx, r.readers()[0])
}

// churn: one client per kind of read (catalogue page, search, Flatpak
// index) reads for Duration while idle, then for Duration while Workers
// clients push (small images into their own repositories; every fourth
// push moves an app's latest tag to a new manifest). The headline is the
// worst busy/idle ratio of the p50 latencies; Extra has each.
func (r *Runner) churn(ctx context.Context) (Result, error) {
	s := r.Sizes
	if err := r.ensureApps(ctx); err != nil {
		return Result{}, err
	}
	rds := r.readers()
	// measure reads with every reader for d, and on while more says so
	// (up to MaxTime), returning the latencies.
	measure := func(ctx context.Context, d time.Duration, more func() bool) ([][]time.Duration, error) {
		lats := make([][]time.Duration, len(rds))
		errs := make([]error, len(rds))
		var wg sync.WaitGroup
		for k, rd := range rds {
			wg.Go(func() {
				buf := make([]byte, 64<<10)
				end, last := time.Now().Add(d), time.Now().Add(max(d, s.MaxTime))
				for i := 0; (time.Now().Before(end) || more()) && time.Now().Before(last) && ctx.Err() == nil; i++ {
					t0 := time.Now()
					if _, _, err := r.C.Get(ctx, rd.path(i), buf, rd.hdr); err != nil {
						errs[k] = fmt.Errorf("%s: %w", rd.name, err)
						return
					}
					lats[k] = append(lats[k], time.Since(t0))
				}
			})
		}
		wg.Wait()
		for k := range rds {
			if errs[k] != nil {
				return nil, errs[k]
			}
			if len(lats[k]) == 0 {
				return nil, fmt.Errorf("%s: no read finished", rds[k].name)
			}
		}
		return lats, nil
	}
	idle, err := measure(ctx, s.Duration, func() bool { return false })
	if err != nil {
		return Result{}, fmt.Errorf("idle reads: %w", err)
	}
	pushCtx, stop := context.WithCancel(ctx)
	var (
		busy    [][]time.Duration
		busyErr error
		done    = make(chan struct{})
		pushed  atomic.Int64 // pushes finished
	)
	go func() {
		defer close(done)
		defer stop()
		// The reads go on past Duration until a push has finished: on a
		// loaded machine (the tests run under -race) a short Duration
		// can pass before the first one does.
		busy, busyErr = measure(ctx, s.Duration, func() bool { return pushed.Load() == 0 })
	}()
	pre := r.uid("churn")
	t, pushErr := r.load(pushCtx, s.Workers, -1, max(s.Duration, s.MaxTime)+time.Minute, func(ctx context.Context, w, i int) (int, int64, error) {
		var (
			q   int
			n   int64
			err error
		)
		if i%4 == 3 {
			app := i % s.Apps
			im := newImage(appID(app), flatpakLabels(appID(app)), 1<<10)
			m := manifest(im.cfg, fmt.Sprintf("%s-%d", pre, i), im.layer)
			q, n, err = 1, int64(len(m)), r.C.PutManifest(ctx, appRepo(app), "latest", m)
		} else {
			q, n, err = r.C.push(ctx, fmt.Sprintf("bench/churn-%d", w), fmt.Sprintf("%s-%d", pre, i), newImage(fmt.Sprintf("%s-%d", pre, i), nil, s.SmallLayer))
		}
		if err == nil {
			pushed.Add(1)
		}
		return q, n, err
	})
	<-done
	if busyErr != nil {
		return Result{}, fmt.Errorf("reads while pushing: %w", busyErr)
	}
	if pushErr != nil && ctx.Err() == nil && pushCtx.Err() == nil {
		return Result{}, fmt.Errorf("pushes: %w", pushErr)
	}
	if t.ops == 0 {
		return Result{}, fmt.Errorf("no push finished in %v of reads", max(s.Duration, s.MaxTime))
	}
	res := Result{Unit: "x", Ops: t.ops, Requests: t.reqs, Seconds: t.elapsed.Seconds()}
	addExtra(&res, "pushes_per_s", float64(t.ops)/t.elapsed.Seconds())
	for k, rd := range rds {
		i50, b50 := ms(Percentile(idle[k], 50)), ms(Percentile(busy[k], 50))
		addExtra(&res, rd.name+"_idle_p50_ms", i50)
		addExtra(&res, rd.name+"_idle_p99_ms", ms(Percentile(idle[k], 99)))
		addExtra(&res, rd.name+"_busy_p50_ms", b50)
		addExtra(&res, rd.name+"_busy_p99_ms", ms(Percentile(busy[k], 99)))
		if i50 > 0 {
			res.Value = max(res.Value, b50/i50)
		}
	}
	return res, nil
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// mainPackage is what the image runs.
const mainPackage = "./cmd/berth"

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// ldflags stamp the build: -s -w drop the symbol tables (the binary is for
// running, not debugging), and the -X values are the version command's.
// A -X for a variable the program lacks is ignored by the linker, so the
// names can lead the code that reads them.
func ldflags(bi buildInfo) string {
	date := bi.Created.UTC().Format(time.RFC3339)
	return strings.Join([]string{
		"-s", "-w",
		"-X", "main.version=" + bi.Version,
		"-X", "main.commit=" + bi.Revision,
		"-X", "main.date=" + date,
	}, " ")
}

// targetEnv is what the cross-compile sets over the environment: static,
// for the target, and without the caller's GOFLAGS (a test run's -race
// must not leak in).
func targetEnv(p v1.Platform) []string {
	env := []string{"CGO_ENABLED=0", "GOOS=" + p.OS, "GOARCH=" + p.Architecture, "GOFLAGS="}
	if p.Architecture == "arm" && p.Variant != "" {
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	return env
}

// compile builds berth for p and returns the binary's path. With a cache
// directory, the binary is kept under a key over everything that decides
// its bytes — the Go version, the target, the flags and each source file of
// the module's packages it links (go list decides which, build tags and
// all), go.mod and go.sum — so a rebuild with unchanged sources is a copy.
func compile(ctx context.Context, dir, cache string, p v1.Platform, bi buildInfo) (path string, hit bool, err error) {
	flags := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags(bi)}
	target := targetEnv(p)
	env := append(os.Environ(), target...)
	if cache == "" {
		tmp, err := os.MkdirTemp("", "berth-image-")
		if err != nil {
			return "", false, err
		}
		path = filepath.Join(tmp, "berth")
		return path, false, goBuild(ctx, dir, env, append(flags, "-o", path, mainPackage))
	}
	key, err := sourceKey(ctx, dir, env, target, flags)
	if err != nil {
		return "", false, err
	}
	entry := filepath.Join(cache, key[:32])
	final := filepath.Join(entry, p.OS+"-"+p.Architecture+p.Variant, "berth")
	if fi, err := os.Stat(final); err == nil && fi.Mode().IsRegular() {
		now := time.Now()
		os.Chtimes(entry, now, now) // recently used: pruned last
		return final, true, nil
	}
	defer pruneCache(cache, keepCacheEntries)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", false, err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", final, os.Getpid())
	defer os.Remove(tmp)
	if err := goBuild(ctx, dir, env, append(flags, "-o", tmp, mainPackage)); err != nil {
		return "", false, err
	}
	// Rename is atomic: a concurrent build of the same key writes the same
	// bytes, and a reader never sees half a binary.
	return final, false, os.Rename(tmp, final)
}

// keepCacheEntries bounds the cache: each source change adds an entry of
// one binary per platform, and a machine that keeps .tools would otherwise
// collect them forever.
const keepCacheEntries = 8

// pruneCache removes all but the keep most recently used entries.
func pruneCache(cache string, keep int) {
	des, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	type aged struct {
		path string
		mod  time.Time
	}
	var entries []aged
	for _, de := range des {
		if fi, err := de.Info(); err == nil && de.IsDir() {
			entries = append(entries, aged{filepath.Join(cache, de.Name()), fi.ModTime()})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].mod.After(entries[j].mod) })
	for i := keep; i < len(entries); i++ {
		os.RemoveAll(entries[i].path)
	}
}

func goBuild(ctx context.Context, dir string, env, args []string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	Module     *struct{ Main bool }
	GoFiles    []string
	SFiles     []string
	EmbedFiles []string
}

// sourceKey hashes what the binary is built from. Modules outside the main
// one are pinned by go.sum, so their files need not be read.
func sourceKey(ctx context.Context, dir string, env, target, flags []string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-json", mainPackage)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list: %w: %s", err, stderr.String())
	}
	ver, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "go %s\n", bytes.TrimSpace(ver))
	for _, kv := range target {
		fmt.Fprintf(h, "env %s\n", kv)
	}
	fmt.Fprintf(h, "flags %q\n", flags)
	files := []string{filepath.Join(dir, "go.mod"), filepath.Join(dir, "go.sum")}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("go list output: %w", err)
		}
		if p.Standard || p.Module == nil || !p.Module.Main {
			continue
		}
		for _, list := range [][]string{p.GoFiles, p.SFiles, p.EmbedFiles} {
			for _, f := range list {
				files = append(files, filepath.Join(p.Dir, f))
			}
		}
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("hashing sources: %w", err)
		}
		rel, _ := filepath.Rel(dir, f)
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s %x\n", filepath.ToSlash(rel), sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

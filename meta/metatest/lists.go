package metatest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/berth-dev/berth/meta"
)

// pageCase is one call of a paginated listing over a known sorted set.
type pageCase struct {
	last string
	n    int
	want []string
}

func pageCases(all []string) []pageCase {
	return []pageCase{
		{"", -1, all},
		{"", 0, []string{}},
		{"", 1, all[:1]},
		{"", 3, all[:3]},
		{"", len(all), all},
		{"", len(all) + 10, all},
		{all[len(all)-1], 5, []string{}},
		{"\x7f", 5, []string{}},
	}
}

func checkPaging(t *testing.T, list func(last string, n int) ([]string, error), all []string, cases []pageCase) {
	t.Helper()
	for _, c := range cases {
		got, err := list(c.last, c.n)
		if err != nil {
			t.Errorf("list(last=%q, n=%d): %v", c.last, c.n, err)
			continue
		}
		checkStrings(t, fmt.Sprintf("list(last=%q, n=%d)", c.last, c.n), got, c.want)
	}
	// Walking page by page, as a client following Link headers does, yields
	// every name once, in order.
	for _, n := range []int{1, 2, 3, len(all)} {
		var walked []string
		last := ""
		for range len(all) + 2 {
			page, err := list(last, n)
			if err != nil {
				t.Fatalf("list(last=%q, n=%d): %v", last, n, err)
			}
			if len(page) == 0 {
				break
			}
			walked = append(walked, page...)
			last = page[len(page)-1]
		}
		if !slices.Equal(walked, all) {
			t.Errorf("walk with n=%d = %q, want %q", n, walked, all)
		}
	}
}

func testTagsPagination(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	// Sorted in byte order: digits < upper case < '_' < lower case. A
	// locale-aware collation orders these differently.
	all := []string{"1.0", "1.0-rc", "B", "_x", "a", "ab", "abc", "b", "v1"}
	shuffled := slices.Clone(all)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i, tag := range shuffled {
		// Spread the tags over several manifests.
		put(t, s, image("app", fmt.Sprint(i%3), ds[0]), tag)
	}
	// Another repository's tags never show.
	link(t, s, "app2", "config")
	put(t, s, image("app2", "x", ds[0]), "aa", "zz")

	cases := append(pageCases(all),
		// distribution's prefix bug: "ab" and "abc" follow "a".
		pageCase{"a", 10, []string{"ab", "abc", "b", "v1"}},
		pageCase{"a", 1, []string{"ab"}},
		pageCase{"ab", 1, []string{"abc"}},
		pageCase{"abc", 100, []string{"b", "v1"}},
		// last need not be a tag.
		pageCase{"aa", 2, []string{"ab", "abc"}},
		pageCase{"1", -1, all},
		pageCase{"C", 1, []string{"_x"}},
	)
	checkPaging(t, func(last string, n int) ([]string, error) {
		return s.Tags(ctx, "app", last, n)
	}, all, cases)
}

func testTagsRepoNotFound(t *testing.T, s meta.Store) {
	ctx := t.Context()
	link(t, s, "app", "config")
	for _, repo := range []string{"nope", "ap", "app/sub"} {
		_, err := s.Tags(ctx, repo, "", 10)
		wantErr(t, err, meta.ErrRepoNotFound, "Tags("+repo+")")
	}
}

func testTagsEmpty(t *testing.T, s meta.Store) {
	ctx := t.Context()
	link(t, s, "app", "config")
	for _, n := range []int{-1, 0, 10} {
		got, err := s.Tags(ctx, "app", "", n)
		noErr(t, err, "Tags of repository without tags")
		checkStrings(t, fmt.Sprintf("Tags(n=%d)", n), got, []string{})
	}
}

func testRepositoriesPagination(t *testing.T, s meta.Store) {
	ctx := t.Context()
	// Sorted in byte order: '-' < '.' < '/' < '_' < letters.
	all := []string{"a", "a-b", "a.b", "a/b", "a/b/c", "a_b", "ab", "b", "lib/x/y/z"}
	shuffled := slices.Clone(all)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i, repo := range shuffled {
		// Repositories come to exist by a blob link or by a manifest.
		if i%2 == 0 {
			link(t, s, repo, "blob")
		} else {
			put(t, s, image(repo, repo, ""))
		}
	}
	cases := append(pageCases(all),
		pageCase{"a", 3, []string{"a-b", "a.b", "a/b"}},
		pageCase{"a/b", 2, []string{"a/b/c", "a_b"}},
		pageCase{"a/a", -1, []string{"a/b", "a/b/c", "a_b", "ab", "b", "lib/x/y/z"}},
		pageCase{"lib", 1, []string{"lib/x/y/z"}},
	)
	checkPaging(t, func(last string, n int) ([]string, error) {
		return s.Repositories(ctx, last, n)
	}, all, cases)
}

func testRepositoriesEmpty(t *testing.T, s meta.Store) {
	for _, n := range []int{-1, 0, 10} {
		got, err := s.Repositories(t.Context(), "", n)
		noErr(t, err, "Repositories of empty store")
		checkStrings(t, fmt.Sprintf("Repositories(n=%d)", n), got, []string{})
	}
}

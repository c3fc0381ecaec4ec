package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/meta/metatest"
)

func TestIndex(t *testing.T) {
	metatest.RunIndex(t, func(t *testing.T) metatest.IndexStore {
		return open(t, filepath.Join(t.TempDir(), "meta.db"))
	})
}

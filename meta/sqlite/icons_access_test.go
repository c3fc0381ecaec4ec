package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/meta/metatest"
)

func TestIconAccess(t *testing.T) {
	metatest.RunIconAccess(t, func(t *testing.T) metatest.IconAccessStore {
		return open(t, filepath.Join(t.TempDir(), "meta.db"))
	})
}

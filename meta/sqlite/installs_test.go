package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/meta/metatest"
)

func TestInstalls(t *testing.T) {
	metatest.RunInstalls(t, func(t *testing.T) metatest.InstallStore {
		return open(t, filepath.Join(t.TempDir(), "meta.db"))
	})
}

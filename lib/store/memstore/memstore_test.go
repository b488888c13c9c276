package memstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/memstore"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New(t.Name()) })
}

func TestRegistryShares(t *testing.T) {
	var reg memstore.Registry
	ctx := context.Background()
	if err := reg.Store("x").Put(ctx, "All/a-1.tgz", strings.NewReader("a"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Store("x").Stat(ctx, "All/a-1.tgz"); err != nil {
		t.Errorf("same name, other handle: %v", err)
	}
	if _, err := reg.Store("y").Stat(ctx, "All/a-1.tgz"); !store.IsNotExist(err) {
		t.Errorf("other name sees the object: %v", err)
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return memstore.New(b.Name()) })
}

// Package blobtest is the contract suite every blob.Store driver runs: what
// it checks is what blob.Store promises, and behaviour it does not check is
// not promised. A driver's test calls Run (or RunFactory, to enable the
// restart and tear-down checks) with a function returning a fresh, empty
// store.
//
// The suite generates large blobs from a deterministic stream and never
// holds them in memory. It keeps no package-level state.
package blobtest

// Package test checks the Berth Helm chart (deploy/helm/berth) without a
// cluster: helm lint --strict and helm template for each values profile,
// every rendered object strict-decoded into the Kubernetes API types, and
// the pod's environment — with what Kubernetes injects for the release's
// Service — given to a real berth binary with the rendered config.yaml.
//
// It is a module of its own so that Berth's module does not take on the
// Kubernetes dependencies; scripts/test.sh runs it.
package test

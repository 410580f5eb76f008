// Package manifests turns the YAML files of a repository checkout into typed,
// defaulted and validated objects (SPEC M-1, M-2, M-3).
//
// Every apiVersion the upstream projects still serve for a kind nodevirt
// reads is accepted and converted to the one the rest of nodevirt uses
// (kubevirt.io/v1alpha3 to v1, hco.kubevirt.io/v1 to the v1beta1 layout…);
// one they no longer serve is refused naming the version to use.
//
// Each document is decoded with the upstream Go API types (kubevirt.io/api, the
// CDI api, k8s.io/api) in strict mode: every unknown field, wrong type and
// duplicate key is reported with its own file:line:col and field path, because a
// go.yaml.in/yaml/v3 node tree is kept beside the typed value. VirtualMachines
// that reference an instancetype or preference get them applied once every
// file is read (the references may cross files; conflicts are errors as in
// KubeVirt's admission). VirtualMachines and VirtualMachineInstances then get
// KubeVirt's mutating-webhook defaults (Default) and are checked against
// KubeVirt's admission rules and the seed documents' rules. All problems of a
// load are returned at once as diag entries.
//
// Failure isolation (SPEC M-3): an object with an error diagnostic is marked
// invalid, so the reconciler keeps its last good state; a document whose identity
// cannot be known (syntax error, unknown kind, missing name) sets
// Set.Incomplete, so the reconciler does not prune objects it may have held.
//
// The package does no host I/O beyond reading the manifest directory and must
// not import the reconciler or runtime packages.
package manifests

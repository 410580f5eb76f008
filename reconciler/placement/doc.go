// Package placement decides which node of a fleet runs each VirtualMachine
// (SPEC VM-3, F-1; seed 8.14.2). It owns the scheduling-only fields of a VMI
// spec: nodeSelector, affinity (node, pod, pod anti) and tolerations, checked
// against the Node manifests' labels and taints with kube-scheduler's filter
// and score rules, simplified to what a fleet of agents can compute alike.
//
// Place is a pure function of its inputs: every agent that reads the same
// commit gets the same Result, whatever the order of the manifests, so no VM
// is started on two hosts. Nodes are taken in name order and VMs in key order
// ("namespace/name"), VMs that keep their previous node first; a VM is placed
// greedily against the VMs placed before it and is never moved by a later
// one. Unschedulable VMs get the scheduler's message ("0/3 nodes are
// available: …").
//
// The package does no host I/O and must not import runtime drivers, source
// or the reconciler; it depends only on k8s.io/api, k8s.io/apimachinery and
// kubevirt.io/api.
package placement

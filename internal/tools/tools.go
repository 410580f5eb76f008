//go:build tools

// Package tools pins the project's chosen dependencies in go.mod before code uses them.
package tools

import (
	_ "github.com/cheggaaa/pb/v3"
	_ "github.com/coreos/butane/config"
	_ "github.com/coreos/go-systemd/v22/dbus"
	_ "github.com/coreos/go-systemd/v22/unit"
	_ "github.com/fluxcd/pkg/git/gogit"
	_ "github.com/fluxcd/pkg/git/repository"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/google/go-containerregistry/pkg/v1/layout"
	_ "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	_ "github.com/kdomanski/iso9660"
	_ "github.com/spf13/cobra"
	_ "github.com/ulikunitz/xz"
	_ "go.etcd.io/bbolt"
	_ "go.yaml.in/yaml/v3"
	_ "kubevirt.io/api/core/v1"
	_ "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	_ "libvirt.org/go/libvirt"
	_ "libvirt.org/go/libvirtxml"
	_ "sigs.k8s.io/yaml"
)

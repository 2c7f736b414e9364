//go:build !linux

package sriov

import "errors"

// kernelNet is only available on Linux: SR-IOV and network namespaces are Linux features.
type kernelNet struct{}

var errNotLinux = errors.New("SR-IOV needs Linux (network namespaces, sysfs)")

func (kernelNet) Host() (netNamespace, error)        { return nil, errNotLinux }
func (kernelNet) Node(pid int) (netNamespace, error) { return nil, errNotLinux }

func defaultRouteLinks() (map[int]bool, error) { return nil, errNotLinux }

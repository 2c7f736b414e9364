// Package all links every provider into the tool. Add a line here for a
// new provider folder.
package all

import (
	_ "github.com/kubevirt/kubevirtci-go/providers/kind-1.22-sriov"
	_ "github.com/kubevirt/kubevirtci-go/providers/kind-sriov"
)

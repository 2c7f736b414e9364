package sriov

import (
	"os"

	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// debugLog shows the package's step details in tests when SRIOV_DEBUG is set.
var debugLog *step.Logger

func init() {
	if os.Getenv("SRIOV_DEBUG") != "" {
		debugLog = step.New(os.Stderr, true)
	}
}

package images

import (
	"os"
	"strings"
	"testing"
)

// The Makefile's sim-cluster-up names the images built here; keep them equal.
func TestMakefileNamesTheseImages(t *testing.T) {
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{NodeImage, RegistryImage, Multus.Image(), SRIOVCNI.Image(), SRIOVDevicePlugin.Image()} {
		if !strings.Contains(string(b), img) {
			t.Errorf("Makefile does not name %s (images/versions.go changed?)", img)
		}
	}
}

package images

import (
	"os"
	"strings"
	"testing"
)

// Image names come from code (the Versions values here; the Makefile asks
// for them with KUBEVIRTCI_SOURCE_IMAGES=true), never typed again in the
// Makefile, where they would drift from versions.go.
func TestMakefileTypesNoImageName(t *testing.T) {
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(b)
	for _, v := range []Versions{V122, V136} {
		refs := []string{v.Node.Image(), RegistryImage}
		for _, s := range v.Components.Sources() {
			refs = append(refs, s.Image())
		}
		for _, ref := range refs {
			if strings.Contains(mk, ref) {
				t.Errorf("Makefile names %s: take it from the code (KUBEVIRTCI_SOURCE_IMAGES=true)", ref)
			}
		}
	}
	if !strings.Contains(mk, "KUBEVIRTCI_SOURCE_IMAGES") {
		t.Error("Makefile's sim targets do not ask for the images built from source")
	}
}

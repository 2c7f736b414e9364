// Command hello is the image the end-to-end suite builds, pushes with
// `make cluster-sync` and runs in the cluster: it prints the run ID baked
// into the image and waits to be stopped.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	id, err := os.ReadFile("/run-id")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	fmt.Printf("hello from the kubevirtci-go e2e suite, run %s\n", strings.TrimSpace(string(id)))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
}

// Command pause is the sandbox ("pause") process of a pod: it holds the
// pod's namespaces open and does nothing else. As PID 1 of a pod that shares
// its process namespace it reaps orphaned children. It exits 0 on SIGINT or
// SIGTERM. It is built static (CGO_ENABLED=0) for the k8s.gcr.io/pause image
// of the node built from source.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (kubevirtci, built from source)")
		return
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		switch s {
		case syscall.SIGCHLD:
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		default:
			fmt.Fprintf(os.Stderr, "pause: shutting down, got signal %v\n", s)
			os.Exit(0)
		}
	}
}

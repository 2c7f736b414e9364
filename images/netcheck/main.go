// Command netcheck is a tiny static network probe for tests of a cluster:
//
//	netcheck serve ADDR     answer HTTP on ADDR with this host's name
//	netcheck get URL        GET URL, print the body; exit 1 on failure
//	netcheck lookup NAME    resolve NAME with the cluster's DNS, print the addresses
//
// get and lookup retry for up to 60 seconds, so that a pod started next to a
// new service or pod does not fail on a race.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: netcheck serve ADDR | get URL | lookup NAME")
		os.Exit(2)
	}
	arg := os.Args[2]
	switch os.Args[1] {
	case "serve":
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello from %s\n", host) })
		fmt.Fprintf(os.Stderr, "netcheck: serving on %s\n", arg)
		if err := http.ListenAndServe(arg, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "get":
		retry(func() error {
			c := http.Client{Timeout: 5 * time.Second}
			resp, err := c.Get(arg)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", arg, resp.Status)
			}
			fmt.Print(string(b))
			return nil
		})
	case "lookup":
		retry(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			addrs, err := net.DefaultResolver.LookupHost(ctx, arg)
			if err != nil {
				return err
			}
			fmt.Println(strings.Join(addrs, " "))
			return nil
		})
	default:
		fmt.Fprintf(os.Stderr, "netcheck: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func retry(f func() error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "netcheck:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "netcheck: retrying:", err)
		time.Sleep(2 * time.Second)
	}
}

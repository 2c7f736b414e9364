// Command hello is the image the end-to-end suite builds, pushes with
// `make cluster-sync` and runs in the cluster:
//
//	hello               print the run ID baked into the image, wait to be stopped
//	hello addrs IFACE   print IFACE's addresses, one a line
//	hello ping ADDR     send ICMP echo requests to ADDR until one is answered (30 s at most)
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

func main() {
	switch {
	case len(os.Args) == 1:
		serve()
	case len(os.Args) == 3 && os.Args[1] == "addrs":
		addrs(os.Args[2])
	case len(os.Args) == 3 && os.Args[1] == "ping":
		ping(os.Args[2])
	default:
		fail(fmt.Errorf("usage: hello [addrs IFACE | ping ADDR]"))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "hello:", err)
	os.Exit(1)
}

func serve() {
	id, err := os.ReadFile("/run-id")
	if err != nil {
		fail(err)
	}
	fmt.Printf("hello from the kubevirtci-go e2e suite, run %s\n", strings.TrimSpace(string(id)))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
}

func addrs(name string) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		fail(err)
	}
	as, err := ifc.Addrs()
	if err != nil {
		fail(err)
	}
	for _, a := range as {
		fmt.Println(a.String())
	}
}

func ping(addr string) {
	dst, err := net.ResolveIPAddr("ip4", addr)
	if err != nil {
		fail(err)
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		fail(err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	deadline := time.Now().Add(30 * time.Second)
	for seq := 1; time.Now().Before(deadline); seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("kubevirtci-e2e")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			fail(err)
		}
		sent := time.Now()
		if _, err := c.WriteTo(b, dst); err != nil {
			fail(err)
		}
		buf := make([]byte, 1500)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break // no answer within a second: send the next one
			}
			r, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || r.Type != ipv4.ICMPTypeEchoReply || from.String() != dst.String() {
				continue
			}
			if e, ok := r.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
				fmt.Printf("reply from %s: icmp_seq=%d time=%s\n", from, seq, time.Since(sent).Round(time.Microsecond))
				return
			}
		}
	}
	fail(fmt.Errorf("no echo reply from %s within 30s", addr))
}

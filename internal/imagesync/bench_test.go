package imagesync

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// BenchmarkSync pushes N images of random (incompressible) layers:
//
//   - oci-layout/first, oci-layout/second: from an OCI layout into an empty
//     in-process registry, then again into the same registry (nothing sent);
//   - docker/*: when a docker engine answers, the same images loaded into it:
//     sync (docker save, compress, push) first and second, the same with
//     Compression "none" (no compression), and `docker push`
//     of the same images (all at once) first and second, to the same kind of
//     registry, in the same run. The ratios are logged at the end.
//
// The docker part uses a registry container of the image in
// IMAGESYNC_BENCH_REGISTRY_IMAGE (default: the project's registry image)
// when the engine has it, else an in-process registry for both sides.
//
// Sizes: IMAGESYNC_BENCH_IMAGES (default 3) images of IMAGESYNC_BENCH_IMAGE_MIB
// (default 64) MiB in IMAGESYNC_BENCH_LAYERS (default 2) layers. The big run:
//
//	IMAGESYNC_BENCH_IMAGES=6 IMAGESYNC_BENCH_IMAGE_MIB=128 \
//	  go test -run '^$' -bench BenchmarkSync -benchtime 1x ./internal/imagesync/
func BenchmarkSync(b *testing.B) {
	n := envInt(b, "IMAGESYNC_BENCH_IMAGES", 3)
	mib := envInt(b, "IMAGESYNC_BENCH_IMAGE_MIB", 64)
	layers := envInt(b, "IMAGESYNC_BENCH_LAYERS", 2)
	b.Logf("%d images x %d MiB in %d layers each (%d MiB in all)", n, mib, layers, n*mib)

	imgs := make([]v1.Image, n)
	for i := range imgs {
		imgs[i] = randomImage(b, int64(mib)<<20/int64(layers), int64(layers))
	}
	dir := filepath.Join(b.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	must(b, err)
	for i, img := range imgs {
		must(b, lp.AppendImage(img, layout.WithAnnotations(map[string]string{annotationRefName: fmt.Sprintf("kubevirt/bench%d:devel", i)})))
	}
	quiet := step.New(io.Discard, false)
	per := map[string]time.Duration{}
	timed := func(name string, setup func(b *testing.B), run func(b *testing.B) int64) {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			var sent int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if setup != nil {
					setup(b)
				}
				b.StartTimer()
				start := time.Now()
				sent = run(b)
				total += time.Since(start)
			}
			per[name] = total / time.Duration(b.N)
			b.ReportMetric(float64(sent)/(1<<20), "MiB-sent/op")
			b.ReportMetric(float64(n*mib)/per[name].Seconds(), "MiB/s")
		})
	}

	var reg *benchRegistry
	syncLayout := func(b *testing.B) int64 {
		res, err := Sync(context.Background(), Options{Sources: []string{dir}, Registry: reg.host, Log: quiet})
		must(b, err)
		return res.Sent()
	}
	timed("oci-layout/first", func(b *testing.B) {
		if reg != nil {
			reg.close()
		}
		reg = newInProcessRegistry(b)
	}, syncLayout)
	timed("oci-layout/second", nil, syncLayout)

	eng := cmdrun.Exec{}
	if _, err := eng.Run(context.Background(), nil, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		b.Logf("no docker engine answers, docker comparison skipped: %v", err)
		return
	}
	ctx := context.Background()
	const prefix = "kubevirtci-bench"
	var refs []string
	for i, img := range imgs {
		ref := fmt.Sprintf("%s/bench%d:devel", prefix, i)
		f := filepath.Join(b.TempDir(), "save.tar")
		writeDockerSave(b, f, img, ref)
		_, err := eng.Run(ctx, nil, "docker", "load", "-i", f)
		must(b, err)
		os.Remove(f)
		refs = append(refs, ref)
	}
	var pushed []string
	b.Cleanup(func() {
		args := append(append([]string{"rmi", "-f"}, refs...), pushed...)
		eng.Run(context.Background(), nil, "docker", args...)
	})
	regImage := os.Getenv("IMAGESYNC_BENCH_REGISTRY_IMAGE")
	if regImage == "" {
		regImage = images.RegistryImage
	}
	newReg := func(b *testing.B) {
		if reg != nil {
			reg.close()
		}
		reg = newContainerRegistry(b, eng, regImage)
		if reg == nil {
			reg = newInProcessRegistry(b)
		}
	}
	newReg(b)
	b.Logf("docker comparison against %s", reg.kind)
	syncDocker := func(compression string) func(b *testing.B) int64 {
		return func(b *testing.B) int64 {
			res, err := Sync(ctx, Options{CLI: "docker", Runner: eng, Prefix: prefix, Registry: reg.host, Log: quiet, Jobs: n, Compression: compression})
			must(b, err)
			if len(res.Images) != n {
				b.Fatalf("synced %d images, want %d", len(res.Images), n)
			}
			return res.Sent()
		}
	}
	timed("docker/sync-first", newReg, syncDocker(CompressGzip))
	timed("docker/sync-second", nil, syncDocker(CompressGzip))
	timed("docker/sync-first-uncompressed", newReg, syncDocker(CompressNone))
	timed("docker/sync-second-uncompressed", nil, syncDocker(CompressNone))

	var targets []string
	tagAll := func(b *testing.B) {
		newReg(b)
		targets = nil
		for _, r := range refs {
			t := reg.host + "/" + r
			_, err := eng.Run(ctx, nil, "docker", "tag", r, t)
			must(b, err)
			targets = append(targets, t)
		}
		pushed = append(pushed, targets...)
	}
	dockerPush := func(b *testing.B) int64 {
		var wg sync.WaitGroup
		errs := make([]error, len(targets))
		for i, t := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = eng.Run(ctx, nil, "docker", "push", t)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			must(b, err)
		}
		return 0 // not measured: docker's own connection
	}
	timed("docker/push-first", tagAll, dockerPush)
	timed("docker/push-second", nil, dockerPush)
	if reg != nil {
		reg.close()
	}

	ratio := func(a, b string) string {
		if per[a] == 0 || per[b] == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", per[a].Seconds()/per[b].Seconds())
	}
	ms := func(k string) time.Duration { return per[k].Round(time.Millisecond) }
	b.Logf("per run: sync first %s, second %s; uncompressed first %s, second %s; docker push first %s, second %s",
		ms("docker/sync-first"), ms("docker/sync-second"), ms("docker/sync-first-uncompressed"), ms("docker/sync-second-uncompressed"),
		ms("docker/push-first"), ms("docker/push-second"))
	b.Logf("docker push / sync (above 1: sync is faster): gzip first %s, second %s; uncompressed first %s, second %s",
		ratio("docker/push-first", "docker/sync-first"), ratio("docker/push-second", "docker/sync-second"),
		ratio("docker/push-first", "docker/sync-first-uncompressed"), ratio("docker/push-second", "docker/sync-second-uncompressed"))
}

func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}

type benchRegistry struct {
	host  string
	kind  string
	close func()
}

func newInProcessRegistry(b *testing.B) *benchRegistry {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	return &benchRegistry{host: strings.TrimPrefix(srv.URL, "http://"), kind: "an in-process registry (go-containerregistry)", close: srv.Close}
}

// newContainerRegistry runs image as a fresh registry container published on
// a free loopback port, or returns nil when the engine lacks the image.
func newContainerRegistry(b *testing.B, eng cmdrun.Runner, image string) *benchRegistry {
	ctx := context.Background()
	if _, err := eng.Run(ctx, nil, "docker", "image", "inspect", image); err != nil {
		return nil
	}
	const name = "kubevirtci-bench-registry"
	eng.Run(ctx, nil, "docker", "rm", "-f", "-v", name)
	_, err := eng.Run(ctx, nil, "docker", "run", "-d", "--name", name, "-p", "127.0.0.1::5000", image)
	must(b, err)
	out, err := eng.Run(ctx, nil, "docker", "port", name, "5000/tcp")
	must(b, err)
	host := strings.TrimSpace(strings.Split(string(out), "\n")[0])
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("registry container on %s does not answer: %v", host, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &benchRegistry{host: host, kind: "a registry container (" + image + ")", close: func() {
		eng.Run(context.Background(), nil, "docker", "rm", "-f", "-v", name)
	}}
}

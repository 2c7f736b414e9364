// Command kubevirtci brings up and tears down local Kubernetes clusters for
// KubeVirt development. The mage targets in magefiles/ and the Makefile call
// it; it can also be run on its own:
//
//	kubevirtci [-v] cluster-up | cluster-down | status | sync | ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/internal/interrupt"
	"github.com/kubevirt/kubevirtci-go/internal/step"
	"github.com/kubevirt/kubevirtci-go/providers"
)

// Env is what every command gets.
type Env struct {
	Log     *step.Logger
	Runner  cmdrun.Runner
	Verbose bool
	Getenv  func(string) string
	// RepoRoot is the checkout the tool runs from (the default home of
	// _ci-configs).
	RepoRoot string
	// CRI is the container CLI binary: CRI_BIN, else the detected one
	// (Env.cri finds it, for the commands that need it; the providers
	// detect theirs themselves).
	CRI string
	// Config holds the validated settings (nil for commands that need none).
	Config *config.Config
}

type command struct {
	Name string
	Help string
	// NoConfig commands do not read the cluster settings.
	NoConfig bool
	Run      func(ctx context.Context, env *Env) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.Name]; dup {
		panic("command registered twice: " + c.Name)
	}
	commands[c.Name] = c
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: kubevirtci [-v] <command>\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-16s %s\n", n, commands[n].Help)
	}
}

func main() {
	verbose := flag.Bool("v", false, "print every command run and detailed progress")
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() != 1 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[flag.Arg(0)]
	if !ok {
		fmt.Fprintf(os.Stderr, "kubevirtci: unknown command %q\n", flag.Arg(0))
		usage()
		os.Exit(2)
	}
	os.Exit(run(cmd, *verbose))
}

func run(cmd command, verbose bool) int {
	log := step.New(os.Stderr, verbose)
	env := &Env{
		Log:      log,
		Runner:   cmdrun.Exec{Log: os.Stderr, Verbose: verbose},
		Verbose:  verbose,
		Getenv:   os.Getenv,
		RepoRoot: repoRoot(),
	}
	// The first Ctrl-C or SIGTERM cancels the context: the command stops at
	// the next step and cleans up what it must (NICs go back to the host).
	// A second one kills the process the usual way.
	ctx := interrupt.Context(context.Background())
	if !cmd.NoConfig {
		cfg, err := config.Load(os.Getenv, env.RepoRoot, providers.Defaults)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubevirtci: invalid settings:\n%v\n", err)
			return 1
		}
		env.Config = cfg
	}
	err := cmd.Run(ctx, env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nkubevirtci %s failed: %v\n", cmd.Name, err)
		if cause := context.Cause(ctx); cause != nil && errors.Is(err, context.Canceled) {
			fmt.Fprintf(os.Stderr, "(%v)\n", cause)
		}
	}
	return interrupt.ExitCode(err)
}

// cri returns the container CLI: CRI_BIN, else the first engine that
// answers, else docker. It detects once per process.
func (env *Env) cri(ctx context.Context) string {
	if env.CRI != "" {
		return env.CRI
	}
	env.CRI = env.Getenv("CRI_BIN")
	if env.CRI == "" {
		if c, err := cri.Detect(ctx, "", env.Runner, nil); err == nil {
			env.CRI = c.Bin
		} else {
			env.CRI = "docker"
		}
	}
	return env.CRI
}

// repoRoot is the nearest directory upwards from the working directory that
// holds this project's go.mod, else the working directory.
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "cluster-up", "kubectl.sh")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}

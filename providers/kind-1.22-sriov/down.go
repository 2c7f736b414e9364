package kind122sriov

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Down implements providers.Provider. Order matters: the NICs go back to
// the host while the node containers still exist (their network namespaces
// are the way back), then the nodes, the registry and the files go.
func (p *Provider) Down(ctx context.Context) error {
	c := p.cfg()
	log := p.env.Log
	if err := log.Run("Checking the host", func() error { return p.setup(ctx) }); err != nil {
		return err
	}
	m, err := p.sriovManager()
	if err != nil {
		return err
	}
	// In this order: the PFs out of the live nodes (at once, while their
	// namespaces are there), the nodes deleted (which ends any VM holding
	// a VF through vfio), then the VF counts, which a VF in use could block.
	if err := log.Run("Returning SR-IOV PFs to the host", func() error { return m.ReturnNetdevs(ctx, p.cli) }); err != nil {
		return fmt.Errorf("%w\n\nNothing else was deleted, so that the NICs can still be found; fix the cause and run `make cluster-down` again", err)
	}
	err = log.Run("Deleting kind cluster "+c.ClusterName, func() error {
		return p.kind.Delete(ctx, c.ClusterName, c.KubeconfigPath())
	})
	if err != nil {
		if !c.CI {
			return err
		}
		log.Infof("   CI=true: going on despite the failed delete: %v", err)
	}
	if err := log.Run("Restoring the PFs' VF counts", func() error { return m.Return(ctx, p.cli) }); err != nil {
		return fmt.Errorf("%w\n\nrun `make cluster-down` again", err)
	}
	if err := log.Run("Removing registry "+c.RegistryContainer(), func() error {
		return p.cli.Remove(ctx, c.RegistryContainer())
	}); err != nil {
		return err
	}
	if err := log.Run("Removing "+c.StateDir(), p.removeFiles); err != nil {
		return err
	}
	log.Infof("\nCluster %s is gone.", c.ClusterName)
	return nil
}

// removeFiles deletes what cluster-up wrote, and the state folder when
// nothing else is left in it.
func (p *Provider) removeFiles() error {
	c := p.cfg()
	var errs []error
	for _, f := range []string{c.KubeconfigPath(), c.KubectlHostPath(), c.KubectlHostPath() + ".tmp", c.ConfigProviderPath(), p.kindConfigPath(), filepath.Join(c.StateDir(), "sync-cache.json")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, d := range []string{c.StateDir(), filepath.Dir(c.StateDir())} {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.env.Log.Debugf("keeping %s: %v", d, err)
			break
		}
	}
	return errors.Join(errs...)
}

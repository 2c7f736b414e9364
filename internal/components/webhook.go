package components

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// InjectorWebhook is the MutatingWebhookConfiguration that
// network-resources-injector's installer (an init container of its
// Deployment) registers: its -name argument, "network-resources-injector",
// and "-mutating-config".
const InjectorWebhook = "network-resources-injector-mutating-config"

// waitWebhook waits until the MutatingWebhookConfiguration name exists.
// The installer that wins the race to the TLS secret creates it right
// after the secret, before its pod starts, so by the time the Deployment
// has rolled out it is there or about to be: a short poll, not a watch, is
// enough.
func waitWebhook(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("MutatingWebhookConfiguration %s not registered within %s (the installer init container of network-resources-injector's pods registers it; see its logs): %w", name, timeout, err)
	}
	return nil
}

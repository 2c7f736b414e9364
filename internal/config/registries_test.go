package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestRegistryMirrors(t *testing.T) {
	c := mustLoad(t, env("REGISTRY_MIRRORS", "docker.io=https://mirror.example.com, ghcr.io=http://10.0.0.5:5000/\nDocker.io=http://cache:5000 docker.io=https://mirror.example.com myregistry:5443=https://m:443"))
	want := []Mirror{
		{Host: "docker.io", URL: "https://mirror.example.com"},
		{Host: "ghcr.io", URL: "http://10.0.0.5:5000"},
		{Host: "docker.io", URL: "http://cache:5000"},
		{Host: "myregistry:5443", URL: "https://m:443"},
	}
	if !reflect.DeepEqual(c.RegistryMirrors, want) {
		t.Errorf("REGISTRY_MIRRORS: got %+v, want %+v", c.RegistryMirrors, want)
	}
	if c := mustLoad(t, env()); c.RegistryMirrors != nil {
		t.Errorf("unset REGISTRY_MIRRORS: got %+v, want none", c.RegistryMirrors)
	}
}

func TestRegistryMirrorsRefused(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"docker.io", `"docker.io" is not upstream=mirror`},
		{"docker.io=", `"docker.io=" is not upstream=mirror`},
		{"=http://m", `"=http://m" is not upstream=mirror`},
		{"docker.io=mirror:5000", `"mirror:5000" does not start with http:// or https://`},
		{"docker.io=ftp://m", `does not start with http:// or https://`},
		{"docker.io=https://m/v2/proxy", `has a path`},
		{"docker.io=https://user:pw@m", `is not scheme://host[:port]`},
		{"docker.io=https://m:99999", `port "99999" is not 1 to 65535`},
		{"https://docker.io=https://m", `"https://docker.io" is not a registry host`},
		{"docker_io=https://m", `"docker_io" is not a registry host`},
		{"*=https://m", `"*" is not a registry host`},
		{"registry:5000=http://m:5000", `registry:5000 is the cluster's own registry`},
	} {
		_, err := Load(env("REGISTRY_MIRRORS", tc.value), repo, testDefaults)
		if err == nil {
			t.Errorf("REGISTRY_MIRRORS=%q accepted", tc.value)
			continue
		}
		msg := err.Error()
		for _, w := range []string{`REGISTRY_MIRRORS="` + tc.value + `": `, tc.want, `e.g. REGISTRY_MIRRORS="docker.io=https://mirror.example.com`} {
			if !strings.Contains(msg, w) {
				t.Errorf("REGISTRY_MIRRORS=%q: the error lacks %q:\n%s", tc.value, w, msg)
			}
		}
	}
}

func TestRegistryProxy(t *testing.T) {
	for _, tc := range []struct {
		env       []string
		want      string
		defaulted bool
	}{
		{nil, "", true},
		{[]string{"CI", "false"}, "", true},
		{[]string{"CI", "true"}, DefaultCIRegistryProxy, true},
		{[]string{"CI", "true", "REGISTRY_PROXY", "off"}, "", false},
		{[]string{"CI", "true", "REGISTRY_PROXY", "OFF"}, "", false},
		{[]string{"CI", "true", "REGISTRY_PROXY", "none"}, "", false},
		{[]string{"CI", "true", "REGISTRY_PROXY", "proxy.ci"}, "proxy.ci:3128", false},
		{[]string{"REGISTRY_PROXY", "http://proxy.ci:8080/"}, "proxy.ci:8080", false},
		{[]string{"REGISTRY_PROXY", "172.18.0.1:3128"}, "172.18.0.1:3128", false},
	} {
		c := mustLoad(t, env(tc.env...))
		if c.RegistryProxy != tc.want || c.RegistryProxyDefaulted() != tc.defaulted {
			t.Errorf("%v: REGISTRY_PROXY %q (defaulted %v), want %q (%v)", tc.env, c.RegistryProxy, c.RegistryProxyDefaulted(), tc.want, tc.defaulted)
		}
	}
	for _, v := range []string{"proxy ci", "proxy:0", "proxy:x", "pro_xy"} {
		_, err := Load(env("REGISTRY_PROXY", v), repo, testDefaults)
		if err == nil || !strings.HasPrefix(err.Error(), `REGISTRY_PROXY="`+v+`": `) || !strings.Contains(err.Error(), `or to "off" for none`) {
			t.Errorf("REGISTRY_PROXY=%q: got %v, want a refusal naming it", v, err)
		}
	}
}

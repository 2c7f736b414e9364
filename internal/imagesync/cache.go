package imagesync

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// cache remembers, between runs, facts that save work but are never trusted
// blindly: every entry is checked against the registry before it is used.
//
//   - layers: uncompressed layer digest -> the digest and size it gzips to.
//     Lets a changed image skip compressing the layers it shares with what
//     the registry already holds.
//   - images: destination reference -> the engine's image ID and the manifest
//     digest pushed for it. Lets an unchanged engine image skip `save`.
//
// A nil *cache is valid and remembers nothing.
type cache struct {
	path string

	mu    sync.Mutex
	data  cacheData
	dirty bool
}

type cacheData struct {
	Version int                  `json:"version"`
	Layers  map[string]layerHint `json:"layers"`
	Images  map[string]imageHint `json:"images"`
}

type layerHint struct {
	Digest v1.Hash `json:"digest"`
	Size   int64   `json:"size"`
}

type imageHint struct {
	EngineID string  `json:"engineID"`
	Digest   v1.Hash `json:"digest"`
}

const cacheVersion = 1

// openCache reads the cache file at path ("" = no cache). A missing,
// unreadable or outdated file gives an empty cache: it only holds hints.
func openCache(path string) *cache {
	if path == "" {
		return nil
	}
	c := &cache{path: path, data: cacheData{Version: cacheVersion}}
	b, err := os.ReadFile(path)
	if err == nil {
		var d cacheData
		if json.Unmarshal(b, &d) == nil && d.Version == cacheVersion {
			c.data = d
		}
	}
	if c.data.Layers == nil {
		c.data.Layers = map[string]layerHint{}
	}
	if c.data.Images == nil {
		c.data.Images = map[string]imageHint{}
	}
	return c
}

func (c *cache) layer(diffID v1.Hash) (layerHint, bool) {
	if c == nil {
		return layerHint{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.data.Layers[diffID.String()]
	return h, ok
}

func (c *cache) putLayer(diffID, digest v1.Hash, size int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data.Layers[diffID.String()] = layerHint{Digest: digest, Size: size}
	c.dirty = true
}

func (c *cache) forgetLayer(diffID v1.Hash) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.data.Layers, diffID.String())
	c.dirty = true
}

func (c *cache) image(dst string) (imageHint, bool) {
	if c == nil {
		return imageHint{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.data.Images[dst]
	return h, ok
}

func (c *cache) putImage(dst, engineID string, digest v1.Hash) {
	if c == nil || engineID == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data.Images[dst] = imageHint{EngineID: engineID, Digest: digest}
	c.dirty = true
}

// save writes the cache atomically when it changed.
func (c *cache) save() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	b, err := json.MarshalIndent(c.data, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o755); err != nil {
		return fmt.Errorf("writing the sync cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".sync-cache-*")
	if err != nil {
		return fmt.Errorf("writing the sync cache: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing the sync cache %s: %w", c.path, err)
	}
	c.dirty = false
	return nil
}

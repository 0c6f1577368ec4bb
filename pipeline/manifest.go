package pipeline

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/night"
)

// ReadManifest reads a night's run manifest.
func ReadManifest(p night.Paths) (night.Manifest, error) {
	var m night.Manifest
	path := p.Manifest()
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("run manifest %s: %w", path, err)
	}
	return m, nil
}

func writeManifest(p night.Paths, m night.Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p.Manifest(), append(b, '\n'), 0o640)
}

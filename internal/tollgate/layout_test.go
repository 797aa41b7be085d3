package tollgate_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tollgate/tollgate"

// engines implement domain interfaces for one technology each.
func engines() []string {
	return []string{module + "/internal/sqlite", module + "/internal/postgres", module + "/internal/redis"}
}

func isEngine(pkg string) bool {
	for _, e := range engines() {
		if pkg == e || strings.HasPrefix(pkg, e+"/") {
			return true
		}
	}
	return false
}

// TestImportDirections keeps the layout of DESIGN.md: the domain imports
// only the standard library, engines import only the domain, features never
// import an engine, and only cmd/tollgate chooses implementations.
func TestImportDirections(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Standard", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		seen++
		for _, imp := range p.Imports {
			own := strings.HasPrefix(imp, module+"/")
			thirdParty := strings.Contains(strings.Split(imp, "/")[0], ".") && !own
			switch {
			case p.ImportPath == module+"/internal/tollgate" && (own || thirdParty):
				t.Errorf("the domain imports %s; it may import only the standard library", imp)
			case isEngine(p.ImportPath) && own && imp != module+"/internal/tollgate" && !isEngine(imp):
				t.Errorf("engine %s imports %s; engines import only the domain", p.ImportPath, imp)
			case !isEngine(p.ImportPath) && !strings.HasPrefix(p.ImportPath, module+"/cmd/") && isEngine(imp):
				t.Errorf("%s imports engine %s; only cmd/tollgate wires engines", p.ImportPath, imp)
			}
		}
	}
	if seen == 0 {
		t.Fatal("go list found no packages")
	}
}

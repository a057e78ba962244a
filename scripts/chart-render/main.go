// chart-render renders a Helm 3 chart the way `helm template` does, for machines that
// cannot install Helm: Go's text/template with the sprig functions Helm uses, plus Helm's
// own include, tpl, toYaml, fromYaml, toJson, required, fail and .Files.Get.
//
//	chart-render CHART_DIR RELEASE NAMESPACE [VALUES.yaml ...] > manifests.yaml
//
// Values are values.yaml deep-merged with each file in turn (a later file wins; null
// removes a key), as `helm install -f a.yaml -f b.yaml` does. Every template under
// templates/ whose name does not start with "_" is rendered (NOTES.txt too, never printed). Each
// rendered document is printed after a "# Source: <chart>/templates/<file>" line.
// It does NOT validate values against values.schema.json (the tests do that with ajv),
// and it knows no cluster: `lookup` returns an empty map and .Capabilities is fixed.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

type files map[string][]byte

// Get returns a chart file's contents, or "" when there is no such file (as Helm does).
func (f files) Get(name string) string { return string(f[name]) }

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: chart-render CHART_DIR RELEASE NAMESPACE [VALUES.yaml ...]")
		os.Exit(2)
	}
	out, err := render(os.Args[1], os.Args[2], os.Args[3], os.Args[4:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func render(chartDir, release, namespace string, valueFiles []string) (string, error) {
	chartMeta, err := readYamlFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chartName, _ := chartMeta["name"].(string)
	values, err := readYamlFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, f := range valueFiles {
		extra, err := readYamlFile(f)
		if err != nil {
			return "", err
		}
		values = mergeValues(values, extra)
	}
	all := files{}
	err = filepath.Walk(chartDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		b, err := os.ReadFile(path)
		all[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		return "", err
	}
	// Helm's .Chart carries Chart.yaml with capitalised keys.
	chart := map[string]interface{}{}
	for k, v := range chartMeta {
		chart[strings.ToUpper(k[:1])+k[1:]] = v
	}
	top := map[string]interface{}{
		"Values":  values,
		"Chart":   chart,
		"Files":   all,
		"Release": map[string]interface{}{"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30"},
		},
	}

	root := template.New(chartName)
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includeDepth := 0
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 100 {
			return "", errors.New("include: too deep (a template includes itself?)")
		}
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return strings.ReplaceAll(buf.String(), "<no value>", ""), err
	}
	funcs["toYaml"] = func(v interface{}) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return normalize(m).(map[string]interface{})
	}
	funcs["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(normalize(v))
		if err != nil {
			return ""
		}
		return string(b)
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(msg)
		}
		return v, nil
	}
	funcs["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	funcs["lookup"] = func(...interface{}) map[string]interface{} { return map[string]interface{}{} }
	root.Funcs(funcs).Option("missingkey=zero")

	var names []string
	for name := range all {
		if strings.HasPrefix(name, "templates/") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := root.New(chartName + "/" + name).Parse(string(all[name])); err != nil {
			return "", err
		}
	}
	var out strings.Builder
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		full := chartName + "/" + name
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": full, "BasePath": chartName + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, data); err != nil {
			return "", err
		}
		if base == "NOTES.txt" {
			// Rendered so an error in it fails like Helm's install would; never printed.
			continue
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
				continue
			}
			out.WriteString("---\n# Source: " + full + "\n" + strings.TrimLeft(strings.TrimPrefix(doc, "---"), "\n") + "\n")
		}
	}
	return out.String(), nil
}

func readYamlFile(path string) (map[string]interface{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return normalize(m).(map[string]interface{}), nil
}

// normalize turns yaml.v2's map[interface{}]interface{} into map[string]interface{} and
// integers into float64, as Helm's sigs.k8s.io/yaml (YAML through JSON) does.
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := map[string]interface{}{}
		for k, val := range t {
			m[fmt.Sprint(k)] = normalize(val)
		}
		return m
	case map[string]interface{}:
		m := map[string]interface{}{}
		for k, val := range t {
			m[k] = normalize(val)
		}
		return m
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, val := range t {
			out[i] = normalize(val)
		}
		return out
	case int:
		// Helm reads values through JSON, so every number is a float64 (1000000 prints as 1e+06).
		return float64(t)
	}
	return v
}

// mergeValues deep-merges src over dst as Helm merges -f files: maps merge key by key,
// anything else is replaced, and a null removes the key.
func mergeValues(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		srcMap, srcIsMap := v.(map[string]interface{})
		dstMap, dstIsMap := dst[k].(map[string]interface{})
		if srcIsMap && dstIsMap {
			dst[k] = mergeValues(dstMap, srcMap)
		} else {
			dst[k] = v
		}
	}
	return dst
}

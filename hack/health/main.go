// Command health judges aipolicy objects the way GitOps tools do, for the tests:
//
//   - Argo CD: the health Lua of manifests/argocd (the argocd-cm ConfigMap), run in gopher-lua, the
//     Lua VM inside Argo CD, set up as Argo CD sets it up for a ConfigMap customization: only the
//     package, base and table libraries, the object as the global `obj` (decoded from
//     unstructured, integers as numbers), a one-second budget, and the returned table read as
//     {status, message} through gopher-json, with a status outside Argo CD's set turned Unknown;
//   - kstatus (sigs.k8s.io/cli-utils, what Flux and kpt use): status.Compute.
//
// Usage: health -argocd-cm manifests/argocd/argocd-cm-health.yaml < objects.json
// Input: a JSON array of objects (or a kubectl List). Output: a JSON array, one verdict per
// object, in order. Exit status 1 when a script fails to run or returns something other than a
// table (Argo CD shows such an object with a health error).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// The health codes Argo CD accepts from a script (gitops-engine's HealthStatusCode values).
var argoHealthCodes = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

type verdict struct {
	Kind           string `json:"kind"`
	Name           string `json:"name"`
	Health         string `json:"health"`
	HealthMessage  string `json:"healthMessage"`
	KStatus        string `json:"kstatus"`
	KStatusMessage string `json:"kstatusMessage"`
}

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	configMapPath := flag.String("argocd-cm", "manifests/argocd/argocd-cm-health.yaml", "the argocd-cm ConfigMap with the health scripts")
	flag.Parse()
	scripts, err := readScripts(*configMapPath)
	if err != nil {
		fail(err)
	}
	objects, err := readObjects(os.Stdin)
	if err != nil {
		fail(err)
	}
	verdicts := make([]verdict, 0, len(objects))
	for _, obj := range objects {
		v := verdict{Kind: obj.GetKind(), Name: obj.GetName()}
		gvk := obj.GroupVersionKind()
		key := fmt.Sprintf("resource.customizations.health.%s_%s", gvk.Group, gvk.Kind)
		script, ok := scripts[key]
		if !ok {
			fail(fmt.Errorf("argocd-cm has no %s", key))
		}
		health, err := runHealthLua(obj, script)
		if err != nil {
			fail(fmt.Errorf("%s %s: %w", v.Kind, v.Name, err))
		}
		v.Health, v.HealthMessage = health.Status, health.Message
		result, err := status.Compute(obj)
		if err != nil {
			fail(fmt.Errorf("kstatus %s %s: %w", v.Kind, v.Name, err))
		}
		v.KStatus, v.KStatusMessage = string(result.Status), result.Message
		verdicts = append(verdicts, v)
	}
	out, err := json.MarshalIndent(verdicts, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "health:", err)
	os.Exit(1)
}

func readScripts(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var configMap struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &configMap); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return configMap.Data, nil
}

func readObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("input is neither a JSON array nor a List: %w", err)
		}
		items = list.Items
	}
	objects := make([]*unstructured.Unstructured, 0, len(items))
	for _, item := range items {
		obj := &unstructured.Unstructured{}
		// the same decoding as the API machinery's: integers become int64, as Argo CD sees them
		if err := obj.UnmarshalJSON(item); err != nil {
			return nil, err
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

func runHealthLua(obj *unstructured.Unstructured, script string) (*healthStatus, error) {
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := state.CallByParam(lua.P{Fn: state.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	state.SetContext(ctx)
	state.SetGlobal("obj", toLua(state, obj.Object))
	if err := state.DoString(script); err != nil {
		return nil, err
	}
	returned := state.Get(-1)
	if returned.Type() != lua.LTTable {
		return nil, fmt.Errorf("the script returned a %s, not a table", returned.Type())
	}
	encoded, err := luajson.Encode(returned)
	if err != nil {
		return nil, err
	}
	health := &healthStatus{}
	if err := json.Unmarshal(encoded, health); err != nil {
		return nil, err
	}
	if !argoHealthCodes[health.Status] {
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return health, nil
}

// toLua turns an unstructured value into Lua values: maps into hash tables, slices into arrays
// (1-based), every number into a Lua number, null into nil.
func toLua(state *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case map[string]interface{}:
		table := state.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(state, item))
		}
		return table
	case []interface{}:
		table := state.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case json.Number:
		return lua.LString(v)
	default:
		return lua.LNil
	}
}

// Command deploycheck validates Sparta's deployment files with the parsers
// the real tools use, offline:
//
//	deploycheck compose FILE   load a compose file the way `docker compose config` does
//	                           (compose-go: schema, interpolation, references), then check
//	                           that every bind-mounted file and build context exists
//	deploycheck dockerfile F   parse a Dockerfile with BuildKit's parser and linter (any
//	                           lint warning fails), then check the runtime stage: non-root
//	                           USER, ENTRYPOINT ["sparta"], CMD ["serve"], EXPOSE 3000,
//	                           a VOLUME for /var/lib/sparta and a HEALTHCHECK
//	deploycheck crd FILE...    decode every ServiceMonitor and PrometheusRule in rendered
//	                           manifests strictly into the prometheus-operator API types
//	                           (unknown or mistyped fields fail), since no Kubernetes
//	                           schema bundle covers these CRDs
//
// It exits non-zero on the first file that does not pass.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: deploycheck compose FILE | deploycheck crd FILE...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "compose":
		err = checkCompose(os.Args[2])
	case "dockerfile":
		err = checkDockerfile(os.Args[2])
	case "crd":
		err = checkCRDs(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploycheck:", err)
		os.Exit(1)
	}
}

func checkCompose(file string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithOsEnv,
		cli.WithName("sparta"),
	)
	if err != nil {
		return err
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	n := 0
	for name, svc := range project.Services {
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				return fmt.Errorf("%s: service %s mounts %s: %w", file, name, v.Source, err)
			}
			n++
		}
		if svc.Build != nil {
			df := svc.Build.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(svc.Build.Context, df)
			}
			if _, err := os.Stat(df); err != nil {
				return fmt.Errorf("%s: service %s builds with %s: %w", file, name, df, err)
			}
		}
	}
	fmt.Printf("%s: %d services, %d bind mounts present\n", file, len(project.Services), n)
	return nil
}

func checkCRDs(files []string) error {
	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		dec := yamlv3.NewDecoder(bytes.NewReader(data))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if doc == nil {
				continue
			}
			raw, err := yamlv3.Marshal(doc)
			if err != nil {
				return err
			}
			kind, _ := doc["kind"].(string)
			api, _ := doc["apiVersion"].(string)
			var target any
			switch kind {
			case "ServiceMonitor":
				target = &monitoringv1.ServiceMonitor{}
			case "PrometheusRule":
				target = &monitoringv1.PrometheusRule{}
			default:
				continue
			}
			if api != monitoringv1.SchemeGroupVersion.String() {
				return fmt.Errorf("%s: %s has apiVersion %q, want %q", file, kind, api, monitoringv1.SchemeGroupVersion.String())
			}
			if err := yaml.UnmarshalStrict(raw, target); err != nil {
				return fmt.Errorf("%s: %s: %w", file, kind, err)
			}
			if err := validate(target); err != nil {
				return fmt.Errorf("%s: %s: %w", file, kind, err)
			}
			checked++
		}
	}
	fmt.Printf("%d ServiceMonitor/PrometheusRule objects decoded strictly\n", checked)
	return nil
}

// validate checks what strict decoding cannot: the fields the operator needs.
func validate(obj any) error {
	switch o := obj.(type) {
	case *monitoringv1.ServiceMonitor:
		if o.Name == "" {
			return errors.New("metadata.name is empty")
		}
		if len(o.Spec.Endpoints) == 0 {
			return errors.New("spec.endpoints is empty")
		}
		if len(o.Spec.Selector.MatchLabels) == 0 && len(o.Spec.Selector.MatchExpressions) == 0 {
			return errors.New("spec.selector selects nothing")
		}
		for i, ep := range o.Spec.Endpoints {
			if ep.Port == "" && ep.TargetPort == nil {
				return fmt.Errorf("spec.endpoints[%d] names no port", i)
			}
		}
	case *monitoringv1.PrometheusRule:
		if o.Name == "" {
			return errors.New("metadata.name is empty")
		}
		if len(o.Spec.Groups) == 0 {
			return errors.New("spec.groups is empty")
		}
		for _, g := range o.Spec.Groups {
			if len(g.Rules) == 0 {
				return fmt.Errorf("group %q has no rules", g.Name)
			}
			for _, r := range g.Rules {
				if r.Alert == "" && r.Record == "" {
					return fmt.Errorf("group %q has a rule with neither alert nor record", g.Name)
				}
				if r.Expr.String() == "" {
					return fmt.Errorf("rule %q has no expr", r.Alert+r.Record)
				}
			}
		}
	}
	return nil
}

func checkDockerfile(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var problems []string
	for _, w := range res.Warnings {
		problems = append(problems, fmt.Sprintf("parser: %s", w.Short))
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		problems = append(problems, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s:\n  %s", file, strings.Join(problems, "\n  "))
	}
	if len(stages) < 2 {
		return fmt.Errorf("%s: want a multi-stage build, found %d stage(s)", file, len(stages))
	}
	names := map[string]bool{}
	for _, st := range stages {
		for _, c := range st.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" && !names[strings.ToLower(cp.From)] {
				return fmt.Errorf("%s: stage %q copies from unknown stage %q", file, st.Name, cp.From)
			}
		}
		if st.Name != "" {
			names[strings.ToLower(st.Name)] = true
		}
	}
	final := stages[len(stages)-1]
	var user, entry, cmd string
	var ports, volumes []string
	health := false
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entry = fmt.Sprintf("%q/%v", c.CmdLine, c.PrependShell)
		case *instructions.CmdCommand:
			cmd = fmt.Sprintf("%q/%v", c.CmdLine, c.PrependShell)
		case *instructions.ExposeCommand:
			ports = append(ports, c.Ports...)
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.HealthCheckCommand:
			health = c.Health != nil && len(c.Health.Test) > 0 && c.Health.Test[0] != "NONE"
		}
	}
	uid := strings.SplitN(user, ":", 2)[0]
	switch {
	case user == "" || uid == "root" || uid == "0":
		return fmt.Errorf("%s: runtime stage runs as root (USER %q)", file, user)
	case entry != `["sparta"]/false`:
		return fmt.Errorf("%s: runtime ENTRYPOINT is %s, want exec form [\"sparta\"]", file, entry)
	case cmd != `["serve"]/false`:
		return fmt.Errorf("%s: runtime CMD is %s, want exec form [\"serve\"]", file, cmd)
	case !slices.Contains(ports, "3000") && !slices.Contains(ports, "3000/tcp"):
		return fmt.Errorf("%s: runtime stage does not EXPOSE 3000 (has %v)", file, ports)
	case !slices.Contains(volumes, "/var/lib/sparta"):
		return fmt.Errorf("%s: runtime stage has no VOLUME /var/lib/sparta (has %v)", file, volumes)
	case !health:
		return fmt.Errorf("%s: runtime stage has no HEALTHCHECK", file)
	}
	fmt.Printf("%s: %d stages, runtime user %s, lint clean\n", file, len(stages), user)
	return nil
}

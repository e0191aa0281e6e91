// Package deploy is a test-only module: it checks the manifests in
// kubernetes/ and the Containerfile against the Kubernetes API types and
// against avq serve itself. Its own go.mod keeps k8s.io/api out of the main
// module.
package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests are the objects of kubernetes/, each decoded strictly (an
// unknown or misspelt field fails) into its API type.
type manifests struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	pdb        *policyv1.PodDisruptionBudget
	hpa        *autoscalingv2.HorizontalPodAutoscaler
	adapter    *corev1.ConfigMap
}

func load(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var m manifests
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(b, &tm); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			m.deployment = new(appsv1.Deployment)
			obj = m.deployment
		case "v1 Service":
			m.service = new(corev1.Service)
			obj = m.service
		case "policy/v1 PodDisruptionBudget":
			m.pdb = new(policyv1.PodDisruptionBudget)
			obj = m.pdb
		case "autoscaling/v2 HorizontalPodAutoscaler":
			m.hpa = new(autoscalingv2.HorizontalPodAutoscaler)
			obj = m.hpa
		case "v1 ConfigMap":
			m.adapter = new(corev1.ConfigMap)
			obj = m.adapter
		default:
			t.Fatalf("%s: unexpected object %s %s", f, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if m.deployment == nil || m.service == nil || m.pdb == nil || m.hpa == nil || m.adapter == nil {
		t.Fatalf("want a Deployment, a Service, a PodDisruptionBudget, an HPA and the adapter's ConfigMap: %+v", m)
	}
	return m
}

// flagValue is the value of --name=value in args, "" if absent.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

func duration(t *testing.T, args []string, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(flagValue(args, name))
	if err != nil {
		t.Fatalf("--%s: %v", name, err)
	}
	return d
}

// TestManifestsHangTogether: probes, ports, selectors, the drain's timing,
// the resources for the model and the autoscaler's metric agree.
func TestManifestsHangTogether(t *testing.T) {
	m := load(t)
	d := m.deployment
	pod := d.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || flagValue(c.Args, "listen") != fmt.Sprintf(":%d", c.Ports[0].ContainerPort) {
		t.Errorf("the container port %+v is not --listen %q", c.Ports, flagValue(c.Args, "listen"))
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/health"}, {"readiness", c.ReadinessProbe, "/health"}, {"liveness", c.LivenessProbe, "/livez"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
			t.Errorf("the %s probe %+v: want GET %s on port http", p.name, p.probe, p.path)
		}
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Exec != nil {
		t.Fatalf("preStop %+v: want the sleep action (the image has no shell)", c.Lifecycle)
	}
	drain := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second + duration(t, c.Args, "drain-delay") + duration(t, c.Args, "shutdown-timeout")
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= drain {
		t.Errorf("terminationGracePeriodSeconds %v does not cover preStop + drain delay + shutdown timeout = %v", g, drain)
	}
	// llava-1.5-7b-hf in F16: 13.5 GB of weights, mapped and charged to the
	// pod as page cache, and about 1 GB per running request (README).
	var parallel int
	fmt.Sscan(flagValue(c.Args, "parallel"), &parallel)
	need := resource.MustParse(fmt.Sprintf("%d", int64(13.5e9)+int64(parallel)<<30))
	if mem := c.Resources.Requests[corev1.ResourceMemory]; parallel < 1 || mem.Cmp(need) < 0 {
		t.Errorf("memory request %v for --parallel %d: want at least %v", mem.String(), parallel, need.String())
	}
	if lim := c.Resources.Limits[corev1.ResourceMemory]; lim.Cmp(c.Resources.Requests[corev1.ResourceMemory]) < 0 {
		t.Errorf("memory limit %v below the request", lim.String())
	}
	var threads int64
	fmt.Sscan(flagValue(c.Args, "threads"), &threads)
	if cpu := c.Resources.Requests[corev1.ResourceCPU]; cpu.Value() != threads {
		t.Errorf("cpu request %v for --threads %d", cpu.String(), threads)
	}
	sc, psc := c.SecurityContext, pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the pod must run as non-root on a read-only root file system")
	}
	var modelMounted bool
	for _, vm := range c.VolumeMounts {
		modelMounted = modelMounted || (vm.MountPath == "/model" && vm.ReadOnly && strings.HasPrefix(flagValue(c.Args, "model"), "/model"))
	}
	if !modelMounted {
		t.Errorf("--model %q is not on a read-only mount at /model", flagValue(c.Args, "model"))
	}

	podLabels := labels.Set(pod.Labels)
	if !labels.SelectorFromSet(m.service.Spec.Selector).Matches(podLabels) {
		t.Errorf("the Service selects %v, not the pods %v", m.service.Spec.Selector, pod.Labels)
	}
	if len(m.service.Spec.Ports) != 1 || m.service.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("the Service's ports %+v: want target port http", m.service.Spec.Ports)
	}
	for what, sel := range map[string]*metav1.LabelSelector{"Deployment": d.Spec.Selector, "PodDisruptionBudget": m.pdb.Spec.Selector} {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || !s.Matches(podLabels) {
			t.Errorf("the %s selects %v, not the pods %v (%v)", what, sel, pod.Labels, err)
		}
	}
	if r := d.Spec.Replicas; r == nil || m.pdb.Spec.MaxUnavailable == nil || m.pdb.Spec.MaxUnavailable.IntValue() >= int(*r) {
		t.Errorf("the PodDisruptionBudget lets every replica go at once")
	}

	h := m.hpa.Spec
	if h.ScaleTargetRef.Kind != "Deployment" || h.ScaleTargetRef.Name != d.Name || h.MinReplicas == nil || *h.MinReplicas > h.MaxReplicas {
		t.Errorf("the HPA's target %+v, replicas %v..%d", h.ScaleTargetRef, h.MinReplicas, h.MaxReplicas)
	}
	if len(h.Metrics) != 1 || h.Metrics[0].Pods == nil {
		t.Fatalf("the HPA's metrics %+v: want one pods metric", h.Metrics)
	}
	var rules struct {
		Rules []struct {
			SeriesQuery string `json:"seriesQuery"`
			Resources   struct {
				Overrides map[string]struct {
					Resource string `json:"resource"`
				} `json:"overrides"`
			} `json:"resources"`
			Name struct {
				Matches string `json:"matches"`
				As      string `json:"as"`
			} `json:"name"`
			MetricsQuery string `json:"metricsQuery"`
		} `json:"rules"`
	}
	if err := yaml.UnmarshalStrict([]byte(m.adapter.Data["config.yaml"]), &rules); err != nil || len(rules.Rules) != 1 {
		t.Fatalf("the adapter's rules: %v %+v", err, rules)
	}
	rule := rules.Rules[0]
	if want := h.Metrics[0].Pods.Metric.Name; rule.Name.As != want || !regexp.MustCompile(rule.Name.Matches).MatchString(want) ||
		!strings.HasPrefix(rule.SeriesQuery, want+"{") || rule.Resources.Overrides["pod"].Resource != "pod" {
		t.Errorf("the adapter's rule %+v does not serve the HPA's metric %s per pod", rule, want)
	}
}

// avqBinary builds avq from the main module, one folder up.
var avqBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "avq-deploy-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "avq")
	cmd := exec.Command("go", "build", "-C", "..", "-o", bin, "./cmd/avq")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building avq: %v\n%s", err, out)
	}
	return bin, nil
})

// lockedBuffer collects a process's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAvqServeHasWhatTheManifestsUse: every flag of the Deployment and the
// Containerfile is one of avq serve's, and avq serve started with the
// Deployment's flags (the tiny model in place of the 7B one, a loopback
// port) answers the probes as the manifests expect, with the HPA's metric,
// and drains as the grace period assumes.
func TestAvqServeHasWhatTheManifestsUse(t *testing.T) {
	m := load(t)
	bin, err := avqBinary()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(filepath.Dir(bin))
	help, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	known := map[string]bool{}
	for _, g := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		known[g[1]] = true
	}
	if !known["listen"] || !known["drain-delay"] {
		t.Fatalf("cannot read avq serve's flags from its help:\n%s", help)
	}
	c := m.deployment.Spec.Template.Spec.Containers[0]
	cf, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var entry, cmd []string
	for _, line := range strings.Split(string(cf), "\n") {
		if v, ok := strings.CutPrefix(line, "ENTRYPOINT "); ok {
			json.Unmarshal([]byte(v), &entry)
		}
		if v, ok := strings.CutPrefix(line, "CMD "); ok {
			json.Unmarshal([]byte(v), &cmd)
		}
	}
	if len(entry) != 2 || entry[1] != "serve" || len(cmd) == 0 {
		t.Fatalf("Containerfile: ENTRYPOINT %q CMD %q; want avq serve and its flags", entry, cmd)
	}
	for _, a := range append(append([]string{}, c.Args...), cmd...) {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if strings.HasPrefix(a, "--") && !known[name] {
			t.Errorf("%s: avq serve has no flag --%s", a, name)
		}
	}

	args := []string{"serve"}
	for _, a := range c.Args {
		switch name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "="); name {
		case "model":
			a = "--model=../testdata/tiny-llava"
		case "vq":
			a = "--vq=../testdata/vq/block0_ln1/alignedvq.safetensors"
		case "listen":
			a = "--listen=127.0.0.1:0"
		case "threads":
			a = "--threads=1"
		}
		args = append(args, a)
	}
	stderr := new(lockedBuffer)
	srv := exec.Command(bin, args...)
	srv.Stderr = stderr
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		srv.Process.Kill()
		<-exited
	}()
	var url string
	listening := regexp.MustCompile(`listening on (http://\S+);`)
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		resp, err := hc.Get(url + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if g := listening.FindStringSubmatch(stderr.String()); g != nil && url == "" {
			url = g[1]
		}
		if url != "" {
			if code, _ := get(c.StartupProbe.HTTPGet.Path); code == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("avq serve with the Deployment's flags never passed the startup probe:\n%s", stderr.String())
		}
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if code, body := get(p.HTTPGet.Path); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p.HTTPGet.Path, code, body)
		}
	}
	metric := m.hpa.Spec.Metrics[0].Pods.Metric.Name
	code, body := get(m.deployment.Spec.Template.Annotations["prometheus.io/path"])
	if code != http.StatusOK || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(metric)+` \d+$`).MatchString(body) {
		t.Errorf("/metrics has no sample of the HPA's %s: %d", metric, code)
	}
	// SIGTERM, as the kubelet sends after preStop: readiness fails on the
	// open listener while liveness holds.
	srv.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), "draining"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no drain on SIGTERM:\n%s", stderr.String())
		}
	}
	if code, _ := get(c.ReadinessProbe.HTTPGet.Path); code != http.StatusServiceUnavailable {
		t.Errorf("readiness while draining: %d, want 503", code)
	}
	if code, _ := get(c.LivenessProbe.HTTPGet.Path); code != http.StatusOK {
		t.Errorf("liveness while draining: %d, want 200", code)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("avq serve after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Duration(*m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second):
		t.Errorf("avq serve did not exit within the grace period:\n%s", stderr.String())
	}
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "refused") {
			t.Errorf("a probe was refused: %s", sc.Text())
		}
	}
}

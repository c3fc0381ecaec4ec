package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// conformanceSwitches are every OCI_API_* and OCI_DATA_* switch of the
// pinned conformance suite (docs/tools.md), all turned on, including those
// that default to off in 1.1.
var conformanceSwitches = []string{
	"OCI_API_PING", "OCI_API_PULL", "OCI_API_PUSH",
	"OCI_API_BLOBS_ATOMIC", "OCI_API_BLOBS_DELETE", "OCI_API_BLOBS_DIGEST_HEADER",
	"OCI_API_BLOBS_MOUNT_ANONYMOUS", "OCI_API_BLOBS_UPLOAD_CANCEL",
	"OCI_API_MANIFESTS_ATOMIC", "OCI_API_MANIFESTS_DELETE", "OCI_API_MANIFESTS_DIGEST_HEADER",
	"OCI_API_MANIFESTS_TAG_PARAM",
	"OCI_API_TAGS_ATOMIC", "OCI_API_TAGS_DELETE", "OCI_API_TAGS_LIST",
	"OCI_API_REFERRER",
	"OCI_DATA_IMAGE", "OCI_DATA_INDEX", "OCI_DATA_INDEX_LIST", "OCI_DATA_SPARSE",
	"OCI_DATA_ARTIFACT", "OCI_DATA_SUBJECT", "OCI_DATA_SUBJECT_MISSING",
	"OCI_DATA_ARTIFACT_LIST", "OCI_DATA_SUBJECT_LIST", "OCI_DATA_DATA_FIELD",
	"OCI_DATA_NONDISTRIBUTABLE", "OCI_DATA_CUSTOM_FIELDS", "OCI_DATA_NO_LAYERS",
	"OCI_DATA_EMPTY_BLOB", "OCI_DATA_SHA512",
}

const conformanceTimeout = 10 * time.Minute

// conformanceCounts are the totals the suite prints after
// "OCI Conformance Result:".
type conformanceCounts struct {
	Result                                   string
	Pass, Fail, Skip, Error, Disabled, Total int
	found                                    map[string]bool
}

var countLine = regexp.MustCompile(`^\s+(Disabled|Skip|Pass|FAIL|Error|Total)\.*:\s+(\d+)\s*$`)

func parseConformanceOutput(out []byte) (conformanceCounts, error) {
	c := conformanceCounts{found: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if r, ok := strings.CutPrefix(line, "OCI Conformance Result:"); ok {
			c.Result = strings.TrimSpace(r)
			in = true
			continue
		}
		if !in {
			continue
		}
		m := countLine.FindStringSubmatch(line)
		if m == nil {
			if strings.TrimSpace(line) == "" && len(c.found) > 0 {
				break
			}
			continue
		}
		n, _ := strconv.Atoi(m[2])
		c.found[m[1]] = true
		switch m[1] {
		case "Pass":
			c.Pass = n
		case "FAIL":
			c.Fail = n
		case "Skip":
			c.Skip = n
		case "Error":
			c.Error = n
		case "Disabled":
			c.Disabled = n
		case "Total":
			c.Total = n
		}
	}
	if c.Result == "" {
		return c, fmt.Errorf("no %q line in the output", "OCI Conformance Result:")
	}
	for _, k := range []string{"Pass", "FAIL", "Skip", "Error", "Disabled", "Total"} {
		if !c.found[k] {
			return c, fmt.Errorf("no %s count after the result line", k)
		}
	}
	return c, nil
}

// junitReport is the part of the suite's junit.xml we read.
type junitReport struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Skipped  int `xml:"skipped,attr"`
	Disabled int `xml:"disabled,attr"`
	Suites   []struct {
		Cases []struct {
			Name      string `xml:"name,attr"`
			Status    string `xml:"status,attr"`
			SystemOut string `xml:"system-out"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Data    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Data    string `xml:",chardata"`
			} `xml:"error"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type badCase struct{ Status, Name, Message string }

// notPassed lists the test cases of junit.xml that did not pass.
func (j *junitReport) notPassed() []badCase {
	var out []badCase
	for _, s := range j.Suites {
		for _, c := range s.Cases {
			if c.Status == "passed" || (c.Status == "" && c.Failure == nil && c.Error == nil && c.Skipped == nil) {
				continue
			}
			msg := strings.TrimSpace(c.SystemOut)
			switch {
			case c.Failure != nil && c.Failure.Message != "":
				msg = c.Failure.Message + "\n" + msg
			case c.Error != nil && c.Error.Message != "":
				msg = c.Error.Message + "\n" + msg
			case c.Skipped != nil && c.Skipped.Message != "":
				msg = c.Skipped.Message + "\n" + msg
			}
			status := c.Status
			if status == "" {
				status = "not passed"
			}
			out = append(out, badCase{Status: status, Name: c.Name, Message: strings.TrimSpace(msg)})
		}
	}
	return out
}

// TestConformance runs the OCI distribution-spec conformance suite, with
// every switch on, against a fresh berth, and requires that nothing failed,
// errored, was skipped or was disabled.
func TestConformance(t *testing.T) {
	// The suite's sparse data set pushes an image manifest whose layer is
	// never uploaded; Berth refuses that unless told to accept sparse
	// manifests (docs/design-notes.md).
	s := startServer(t, "BERTH_VALIDATION_SPARSE_MANIFESTS=true")
	// berth must still be up after the run, and exit cleanly.
	runConformance(t, s.Addr, "conformance", func() { s.Stop(t) })
}

// runConformance runs the official conformance suite, every option on,
// against the registry at addr, with its report in test-output/<out>;
// stop runs after the suite and before its results are judged. It fails
// the test unless every case passed.
func runConformance(t *testing.T, addr, out string, stop func()) {
	t.Helper()
	bin := findTool(t, "conformance")
	results := filepath.Join(repoRoot(t), "test-output", out)
	if err := os.RemoveAll(results); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(results, 0o755); err != nil {
		t.Fatal(err)
	}
	ns := "conformance/" + randomName(t, 12)
	env := append(cleanEnv(),
		"OCI_VERSION=1.1",
		"OCI_REGISTRY="+addr,
		"OCI_TLS=disabled",
		"OCI_REPO1="+ns+"/repo1",
		"OCI_REPO2="+ns+"/repo2",
		"OCI_RESULTS_DIR="+results,
	)
	for _, s := range conformanceSwitches {
		env = append(env, s+"=true")
	}
	ctx, cancel := context.WithTimeout(context.Background(), conformanceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = env
	cmd.Dir = results // it reads ./oci-conformance.yaml if present; there is none here
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	os.WriteFile(filepath.Join(results, "stdout.txt"), stdout.Bytes(), 0o644)
	os.WriteFile(filepath.Join(results, "stderr.txt"), stderr.Bytes(), 0o644)
	if ctx.Err() != nil {
		t.Fatalf("conformance suite timed out after %s; output in %s", conformanceTimeout, results)
	}
	stop()

	counts, parseErr := parseConformanceOutput(stdout.Bytes())
	if parseErr != nil {
		t.Fatalf("conformance output (exit: %v): %v\nstdout:\n%s\nstderr:\n%s", runErr, parseErr, clip(stdout.Bytes(), 4000), clip(stderr.Bytes(), 4000))
	}
	t.Logf("conformance in %s: result %s: %d passed, %d failed, %d errors, %d skipped, %d disabled (total %d); report in %s",
		elapsed, counts.Result, counts.Pass, counts.Fail, counts.Error, counts.Skip, counts.Disabled, counts.Total, results)

	var ju junitReport
	jb, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Errorf("junit.xml: %v", err)
	} else if err := xml.Unmarshal(jb, &ju); err != nil {
		t.Errorf("junit.xml: %v", err)
	} else if ju.Failures != counts.Fail || ju.Errors != counts.Error || ju.Skipped != counts.Skip || ju.Tests != counts.Total {
		t.Errorf("junit.xml totals (tests %d, failures %d, errors %d, skipped %d) disagree with the printed ones",
			ju.Tests, ju.Failures, ju.Errors, ju.Skipped)
	}

	ok := counts.Pass > 0 && counts.Fail == 0 && counts.Error == 0 && counts.Skip == 0 && counts.Disabled == 0 && counts.Result == "Pass"
	if ok && runErr == nil {
		return
	}
	bad := ju.notPassed()
	var b strings.Builder
	fmt.Fprintf(&b, "conformance: result %s, %d passed, %d failed, %d errors, %d skipped, %d disabled; exit: %v\n",
		counts.Result, counts.Pass, counts.Fail, counts.Error, counts.Skip, counts.Disabled, runErr)
	fmt.Fprintf(&b, "%d test cases did not pass (full report: %s/report.html, junit.xml, stdout.txt):\n", len(bad), results)
	const maxListed = 100
	for i, c := range bad {
		if i == maxListed {
			fmt.Fprintf(&b, "... and %d more\n", len(bad)-maxListed)
			break
		}
		msg := c.Message
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		fmt.Fprintf(&b, "  [%s] %s\n      %s\n", c.Status, c.Name, strings.ReplaceAll(msg, "\n", "\n      "))
	}
	if len(bad) == 0 {
		fmt.Fprintf(&b, "stderr:\n%s\n", clip(stderr.Bytes(), 4000))
	}
	t.Fatal(b.String())
}

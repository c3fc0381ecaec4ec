package oci

import (
	"errors"
	"reflect"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseImageConfig(t *testing.T) {
	created := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	tests := []struct {
		name    string
		body    string
		want    ImageConfig
		wantErr bool
	}{
		{
			name: "oci",
			body: `{"created":"2024-05-06T07:08:09.123456789Z","architecture":"arm64","variant":"v8","os":"linux",
				"config":{"Env":["PATH=/bin"],"Labels":{"org.opencontainers.image.source":"https://example.com"}},
				"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"x"}]}`,
			want: ImageConfig{OS: "linux", Architecture: "arm64", Variant: "v8", Created: created,
				Labels: map[string]string{"org.opencontainers.image.source": "https://example.com"}},
		},
		{
			name: "docker",
			body: `{"architecture":"amd64","os":"linux","created":"2024-05-06T09:08:09.123456789+02:00",
				"config":{"Hostname":"","Labels":{"maintainer":"me"}},"container_config":{"Labels":{"ignored":"yes"}},
				"docker_version":"24.0.0","rootfs":{"type":"layers","diff_ids":[]}}`,
			want: ImageConfig{OS: "linux", Architecture: "amd64", Created: created,
				Labels: map[string]string{"maintainer": "me"}},
		},
		{name: "empty object", body: `{}`, want: ImageConfig{}},
		{name: "empty JSON config blob", body: "{}\n", want: ImageConfig{}},
		{name: "config null", body: `{"os":"linux","config":null}`, want: ImageConfig{OS: "linux"}},
		{name: "labels null", body: `{"config":{"Labels":null}}`, want: ImageConfig{}},
		{name: "labels empty", body: `{"config":{"Labels":{}}}`, want: ImageConfig{}},
		{name: "created absent", body: `{"os":"windows"}`, want: ImageConfig{OS: "windows"}},
		{name: "created null", body: `{"created":null}`, want: ImageConfig{}},
		{name: "created unparseable is ignored", body: `{"created":"yesterday","os":"linux"}`, want: ImageConfig{OS: "linux"}},
		{name: "created without zone is ignored", body: `{"created":"2024-05-06T07:08:09"}`, want: ImageConfig{}},
		{name: "unknown fields", body: `{"os":"linux","x":{"y":[1,2,3]},"os.features":["a"]}`, want: ImageConfig{OS: "linux"}},

		{name: "empty", body: ``, wantErr: true},
		{name: "not JSON", body: `os: linux`, wantErr: true},
		{name: "array", body: `[]`, wantErr: true},
		{name: "null", body: `null`, wantErr: true},
		{name: "trailing data", body: `{}{}`, wantErr: true},
		{name: "os not a string", body: `{"os":1}`, wantErr: true},
		{name: "label not a string", body: `{"config":{"Labels":{"a":1}}}`, wantErr: true},
		{name: "created not a string", body: `{"created":1}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseImageConfig([]byte(tc.body))
			if tc.wantErr {
				if !errors.Is(err, ErrManifestInvalid) {
					t.Fatalf("ParseImageConfig = %+v, %v; want error wrapping ErrManifestInvalid", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseImageConfig: %v", err)
			}
			if !got.Created.Equal(tc.want.Created) {
				t.Fatalf("Created = %v, want %v", got.Created, tc.want.Created)
			}
			got.Created, tc.want.Created = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseImageConfig = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPlatformString(t *testing.T) {
	tests := []struct {
		name string
		p    *v1.Platform
		want string
	}{
		{"nil", nil, ""},
		{"os arch", &v1.Platform{OS: "linux", Architecture: "amd64"}, "linux/amd64"},
		{"variant", &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "linux/arm/v7"},
		{"os.version ignored", &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.1"}, "windows/amd64"},
		{"empty", &v1.Platform{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PlatformString(tc.p); got != tc.want {
				t.Fatalf("PlatformString = %q, want %q", got, tc.want)
			}
		})
	}
}

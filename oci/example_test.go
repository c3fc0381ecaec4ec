package oci_test

import (
	"errors"
	"fmt"

	"github.com/berth-dev/berth/oci"
)

func ExampleParseManifest() {
	body := []byte(`{
	  "schemaVersion": 2,
	  "mediaType": "application/vnd.oci.image.manifest.v1+json",
	  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
	             "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
	  "layers": [
	    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 32654,
	     "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"},
	    {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "size": 16724,
	     "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b"}
	  ]
	}`)
	m, err := oci.ParseManifest("application/vnd.oci.image.manifest.v1+json", body)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range m.Blobs() {
		fmt.Println("required:", d.Digest)
	}
	for _, d := range m.External() {
		fmt.Println("external:", d.Digest)
	}
	// Output:
	// required: sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
	// required: sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f
	// external: sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b
}

func ExampleParseDigest() {
	for _, s := range []string{
		"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
		"sha384:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:../../etc/passwd",
	} {
		_, err := oci.ParseDigest(s)
		fmt.Println(err == nil, errors.Is(err, oci.ErrUnsupported), errors.Is(err, oci.ErrDigestInvalid))
	}
	// Output:
	// true false false
	// false true false
	// false false true
}

func ExampleValidateName() {
	fmt.Println(oci.ValidateName("library/ubuntu"))
	fmt.Println(oci.ValidateName("library/Ubuntu"))
	// Output:
	// <nil>
	// invalid repository name: "library/Ubuntu": uppercase letter 'U' at offset 8
}

// Package fs is the filesystem driver of blob.Store, used by the embedded
// (single-node) configuration.
//
// Layout under the root directory:
//
//	blobs/<alg>/<first 2 hex digits>/<hex>   committed blobs (alg is sha256 or sha512)
//	uploads/<id>                             data of uploads not yet committed
//
// Digests and upload ids are validated (blob.ValidateDigest,
// blob.ValidateUploadID) before they are joined into a path.
//
// An upload is written to uploads/<id> while a sha256 hasher runs beside it.
// Commit follows containerd's local content store: fsync the upload file,
// check size and digest, and if the blob is not already there, rename the
// file into blobs/ and fsync the directory that received it (and its parent
// when the directory was new). Only then is the blob reported committed.
//
// The package does not know about repositories or manifests, keeps no
// metadata beside the bytes and never removes a directory. Open returns an
// *os.File, so http.ServeContent can serve ranges with sendfile.
package fs

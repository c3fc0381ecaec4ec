package sqlstore

import (
	"reflect"
	"strings"
)

// Queries are the statements of a Store in one SQL dialect: each backend
// fills every field (meta/sqlite and meta/postgres, queries*.go).
type Queries struct {
	Dialect

	AddInstalls           string
	BlobDeleting          string
	BlobKnown             string
	BlobLink              string
	BlobRecord            string
	BlobRecords           string
	BlobRefs              string
	BlobUsers             string
	CatalogChildren       string
	CatalogRepoChildren   string
	CatalogRepoTags       string
	CatalogTags           string
	ClaimableDelta        string
	Claimed               string
	CountClientUploads    string
	CountRepoUploads      string
	CreateUpload          string
	Cursor                string
	DeleteLink            string
	DeleteManifest        string
	DeleteRefsOf          string
	DeleteTag             string
	DeleteTagsOf          string
	DeleteUpload          string
	DeltaManifests        string
	DeltaPairs            string
	DeltaRepos            string
	DropBlobs             string
	DropGoneDeltaPairs    string
	DropGoneDeltaTargets  string
	EarlierVersions       string
	EnsureRepo            string
	Events                string
	ExpireUpload          string
	ExpiredUploads        string
	FinishDelta           string
	FlatpakGeneration     string
	ForgetDeltaManif      string
	GetManifest           string
	GetRefs               string
	GetUpload             string
	HoldLease             string
	Icon                  string
	IconManifestExists    string
	IconRepositories      string
	IndexGeneration       string
	IndexImages           string
	IndexListImages       string
	InitCursor            string
	InsertBlob            string
	InsertDeltaManif      string
	InsertDeltaPair       string
	InsertDeltaTarget     string
	InsertEvent           string
	InsertIcon            string
	InsertLink            string
	InsertManifest        string
	InsertRef             string
	InsertTombstones      string
	InstallTotals         string
	LastEventSeq          string
	LeaseDelta            string
	LinkCreated           string
	Linked                string
	LinkingRepos          string
	Links                 string
	LockOutbox            string
	ManifestBody          string
	ManifestExistsByName  string
	ManifestIcons         string
	ManifestSizes         string
	ManifestsWithoutIcons string
	MarkDeleting          string
	NextRepo              string
	PruneEvents           string
	PutManifestIcon       string
	Referrers             string
	ReferrersOfType       string
	ReleaseDeltaLeases    string
	ReleaseLease          string
	RenewDelta            string
	RepoID                string
	Repositories          string
	RequeueDelta          string
	ResetDeltaPairs       string
	ResetDeltaTargets     string
	ResolveTag            string
	RetireDeltaManif      string
	RetiredDeltas         string
	SetCursor             string
	Stats                 string
	SweepLinks            string
	SweepManifestFacts    string
	TagBody               string
	TagDigest             string
	Tags                  string
	TagsOf                string
	TouchLink             string
	UnlinkedBlobs         string
	UnplannedTargets      string
	UnreferencedLinks     string
	UntaggedManifests     string
	UpdateUpload          string
	UploadExists          string
	UpsertTag             string
}

// Statements returns every statement of q, for preparing.
func (q *Queries) Statements() []string {
	v := reflect.ValueOf(q).Elem()
	out := make([]string, 0, v.NumField())
	for i := range v.NumField() {
		// Templates (IndexImages, IndexListImages) are completed per call.
		if f := v.Field(i); f.Kind() == reflect.String && f.String() != "" && !strings.Contains(f.String(), "%[") {
			out = append(out, f.String())
		}
	}
	return out
}

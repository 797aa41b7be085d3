package tollgate

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// JobStatus is the state of a job (a prediction of the predictions API).
type JobStatus string

// Job statuses, as the predictions API names them. A job is starting while
// it waits in the queue, processing while an upstream runs it, and ends in
// exactly one of the other three.
const (
	JobStarting   JobStatus = "starting"
	JobProcessing JobStatus = "processing"
	JobSucceeded  JobStatus = "succeeded"
	JobFailed     JobStatus = "failed"
	JobCanceled   JobStatus = "canceled"
)

// Terminal reports whether s is an end state.
func (s JobStatus) Terminal() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCanceled
}

// EQueueFull is the code of a submit refused because the caller already
// has the most queued jobs its plan allows (429 with Retry-After).
const EQueueFull = "queue_full"

// EInputInvalid is the code of a job input that fails its model's input
// declarations (422); the message names each failing field.
const EInputInvalid = "invalid_input"

// Owner is whose a job is. Stores match both fields, so an id guessed by
// another user or tenant is ENotFound.
type Owner struct {
	TenantID string
	UserID   string
}

// Job is one unit of queued GPU work: a prediction of a job model.
type Job struct {
	ID    string
	Model string // the job model's name
	Owner
	// Plan, Priority and MaxRunning are the owner's plan and its job
	// priority and concurrency (0: unlimited) when the job was submitted.
	Plan       string
	Priority   int
	MaxRunning int
	// Input is the validated input as a JSON object, defaults filled.
	Input json.RawMessage
	// IdempotencyKey and BodyHash let a repeated submit find this job.
	IdempotencyKey string
	BodyHash       string
	Status         JobStatus
	// Output is the JSON output; file outputs are result references that
	// the API turns into signed links.
	Output json.RawMessage
	Error  string
	Logs   string
	// Upstream is the base URL the job runs on; Handle the upstream's own
	// id of it, when the backend has one.
	Upstream string
	Handle   string
	// Webhook, when set, receives the job's events named in
	// WebhookEvents (start, output, logs, completed).
	Webhook       string
	WebhookEvents []string
	// CancelAt, when set, cancels the job if it has not started by then.
	CancelAt time.Time
	// CancelRequested is set when a running job was asked to stop.
	CancelRequested bool
	CreatedAt       time.Time
	StartedAt       time.Time
	CompletedAt     time.Time
	// PredictMillis is the time the upstream spent on the job.
	PredictMillis int64
	// OutputAudioMillis is the audio in the job's output files.
	OutputAudioMillis int64
	// ResultsRemoved is set once the job's result files were deleted
	// after its model's retention.
	ResultsRemoved bool
	// DispatchedAt is when the job was last sent to its upstream; zero
	// while it is picked but not yet sent (nothing can have run).
	DispatchedAt time.Time
	// Attempts is how many times the job was sent to an upstream.
	Attempts int
	// Seq orders jobs by submission; the store assigns it.
	Seq int64
}

// Validate checks what every store requires of a new job.
func (j *Job) Validate() error {
	switch {
	case j.ID == "" || len(j.ID) > 64:
		return Errorf(EInvalid, "job id must have 1 to 64 characters")
	case j.Model == "":
		return Errorf(EInvalid, "job model is required")
	case j.UserID == "":
		return Errorf(EInvalid, "job owner is required")
	case len(j.Input) == 0 || j.Input[0] != '{':
		return Errorf(EInvalid, "job input must be a JSON object")
	case len(j.IdempotencyKey) > 256:
		return Errorf(EInvalid, "idempotency key is longer than 256 characters")
	case j.MaxRunning < 0:
		return Errorf(EInvalid, "job concurrency must not be negative")
	}
	return nil
}

// QueueLimits bound a user's queue when a job is submitted.
type QueueLimits struct {
	// MaxQueued is the most jobs the user may have waiting; 0 is
	// unlimited.
	MaxQueued int
}

// PickRequest asks for the next job of one job model.
type PickRequest struct {
	Model string
	// Upstreams of the model, each running at most Capacity jobs at once,
	// counted over every model and replica that uses it.
	Upstreams []string
	Capacity  int
	Now       time.Time
}

// JobResult is how a running job ended.
type JobResult struct {
	Status        JobStatus // succeeded, failed or canceled
	Output        json.RawMessage
	Error         string
	Logs          string
	PredictMillis int64
	// OutputAudioMillis is the audio in the output files.
	OutputAudioMillis int64
	CompletedAt       time.Time
}

// JobQuery selects one owner's jobs for a page of a list, newest first.
// At most one of Before and After is set (Seq cursors); Limit is 1..1000.
type JobQuery struct {
	Owner
	Before int64 // jobs with Seq below this; 0 for the newest
	After  int64 // jobs with Seq above this, the page just newer
	Limit  int
}

// JobStore is the durable job queue: SQLite on one node, PostgreSQL in
// cluster mode, where every replica picks from it. Every implementation
// passes storetest.RunJobs.
type JobStore interface {
	// Enqueue stores a new starting job (Seq and CreatedAt filled in) and
	// returns it with created true. With an IdempotencyKey that the owner
	// used before, it returns that job with created false when BodyHash is
	// the same, and EConflict when it differs. EQueueFull when the owner
	// already has limits.MaxQueued starting jobs; EInvalid when j fails
	// Validate.
	Enqueue(ctx context.Context, j *Job, limits QueueLimits) (job *Job, created bool, err error)
	// Pick chooses the next job of r.Model and marks it processing on an
	// upstream of r.Upstreams with a free slot, in one transaction, so no
	// upstream ever runs more than r.Capacity jobs, whichever replica
	// picks. The job is the one of the highest Priority; among users, the
	// one with the fewest running jobs, then the one whose last job
	// started longest ago (never first), then the oldest waiting job; then
	// the user's oldest job. Users at their MaxRunning are passed over.
	// It returns nil, nil when no job is waiting or no slot is free.
	Pick(ctx context.Context, r PickRequest) (*Job, error)
	// SetHandle records the upstream's own id of a processing job.
	// ENotFound when the job is not processing.
	SetHandle(ctx context.Context, id, handle string) error
	// Dispatch records, right before a processing job is sent to its
	// upstream, that it is sent: it sets DispatchedAt to at and adds one
	// to Attempts. ENotFound when the job is not processing.
	Dispatch(ctx context.Context, id string, at time.Time) error
	// Requeue moves a processing job back to starting, when nothing ran
	// on its upstream, at its place in its owner's queue (its Seq):
	// Upstream, Handle, StartedAt and DispatchedAt are cleared, its
	// upstream slot freed; Attempts is kept. It moves the job only when it
	// is still processing with Attempts equal to attempts, so no other
	// process dispatched it since the caller looked: EConflict when it is
	// not, ENotFound when there is no such job. A job whose owner asked to
	// cancel it ends canceled instead, as one canceled before its start.
	// It returns the job as it is now.
	Requeue(ctx context.Context, id string, attempts int, at time.Time) (*Job, error)
	// Finish ends a processing job with r, freeing its upstream slot, and
	// returns the job as ended. It happens once: EConflict when the job
	// already ended, ENotFound when there is no such job or it never
	// started.
	Finish(ctx context.Context, id string, r JobResult) (*Job, error)
	// Cancel cancels the owner's job: a starting job becomes canceled at
	// at and is never picked; a processing job gets CancelRequested (its
	// runner stops it and finishes it); an ended job is returned as it
	// is. ENotFound when o has no such job.
	Cancel(ctx context.Context, o Owner, id string, at time.Time) (*Job, error)
	// CancelExpired cancels every starting job whose CancelAt is at or
	// before now and returns them.
	CancelExpired(ctx context.Context, now time.Time) ([]*Job, error)
	// Job returns the owner's job. ENotFound when o has no such job.
	Job(ctx context.Context, o Owner, id string) (*Job, error)
	// JobByKey returns the owner's job created with an idempotency key, so
	// a repeated create is answered before it is admitted again.
	// ENotFound when o used no such key.
	JobByKey(ctx context.Context, o Owner, key string) (*Job, error)
	// JobByID returns any job, for the scheduler. ENotFound if absent.
	JobByID(ctx context.Context, id string) (*Job, error)
	// Jobs returns a page of the owner's jobs, newest first. EInvalid for
	// a bad query.
	Jobs(ctx context.Context, q JobQuery) ([]*Job, error)
	// Running returns every processing job, oldest first (to re-attach
	// them after a restart).
	Running(ctx context.Context) ([]*Job, error)
	// QueuePosition estimates how many waiting jobs of j's model start
	// before the starting job j under Pick's order: the owner's own jobs
	// queued before j (k of them), every job of a higher priority, and of
	// each other user at j's priority at most k+1 jobs when that user's
	// oldest waiting job is older than the owner's, else at most k. It
	// leaves out running counts and MaxRunning, so it is an estimate. 0
	// when j is not starting.
	QueuePosition(ctx context.Context, j *Job) (int, error)
	// ExpiredResults returns up to limit jobs of model that ended before
	// before and whose results are not yet removed, oldest end first.
	ExpiredResults(ctx context.Context, model string, before time.Time, limit int) ([]*Job, error)
	// MarkResultsRemoved records that a job's result files are deleted.
	// ENotFound if there is no such job.
	MarkResultsRemoved(ctx context.Context, id string) error
	// AddUpload records a user's uploaded input file until it expires,
	// before its bytes are stored, so none is left behind.
	AddUpload(ctx context.Context, u *Upload) error
	// ExpiredUploads returns up to limit uploads that expired at or before
	// before, the first to expire first.
	ExpiredUploads(ctx context.Context, before time.Time, limit int) ([]*Upload, error)
	// RemoveUpload forgets an upload whose bytes are deleted; an absent one
	// is no error.
	RemoveUpload(ctx context.Context, id string) error
	// Stats returns the jobs waiting per model and running per upstream,
	// over every replica.
	Stats(ctx context.Context) (*JobStats, error)
	// AllJobs returns a page of every user's jobs for operators, newest
	// first. EInvalid for a bad filter.
	AllJobs(ctx context.Context, f JobFilter) ([]*Job, error)
}

// Upload is an input file a user keeps for a while (POST /v1/files); its
// bytes live in the result store under its owner.
type Upload struct {
	ID string
	Owner
	ExpiresAt time.Time
}

// JobFilter selects jobs of every user (operators only); empty fields
// match everything. Limit is 1..1000; Before is a Seq cursor (0: newest).
type JobFilter struct {
	Model    string
	Status   JobStatus
	TenantID string
	UserID   string
	Before   int64
	Limit    int
}

// JobStats are the queue's gauges.
type JobStats struct {
	Queued  map[string]int // by model
	Running map[string]int // by upstream URL
}

// JobEvent is progress a backend reports while it runs a job.
type JobEvent struct {
	// Progress is the share done, 0..1; negative when unknown.
	Progress float64
	// Log is a line of output, "" for none.
	Log string
}

// JobRun is one job handed to a backend.
type JobRun struct {
	Job      *Job
	Upstream string // the base URL it runs on
	// Report publishes progress and logs to the job's watchers; never nil.
	Report func(JobEvent)
	// Results stores the job's output files; never nil.
	Results ResultWriter
}

// ResultWriter stores one job's output files.
type ResultWriter interface {
	// Save stores a file and returns the reference a job output holds for
	// it, which the API turns into a signed link.
	Save(ctx context.Context, name, contentType string, body []byte) (ref string, err error)
}

// Backend runs jobs on one kind of upstream (http, comfyui, gradio): it
// submits a job, watches it to its end, cancels it, and collects its
// outputs into run.Results.
type Backend interface {
	// Submit hands the job to its upstream and returns the upstream's id
	// of it, so a restarted gateway can re-attach with Watch. A backend
	// whose upstream has no job ids (http) returns "" and does the work in
	// Watch.
	Submit(ctx context.Context, run *JobRun) (handle string, err error)
	// Watch waits until the upstream ended the job, reporting progress
	// through run.Report, and returns its result, outputs saved. When ctx
	// ends, Watch returns ctx's error; a backend without job ids (http)
	// aborts the job then.
	Watch(ctx context.Context, run *JobRun, handle string) (*JobResult, error)
	// Cancel asks the upstream to stop the job; the runner then ends
	// Watch's context.
	Cancel(ctx context.Context, run *JobRun, handle string) error
}

// ErrDetached is the cause of a running job's context when the gateway
// stops and leaves the job running upstream, to be re-attached by its
// handle (a Reattacher's job): Watch then returns without stopping it.
var ErrDetached = errors.New("the gateway stopped and left the job running upstream")

// Reattacher is a Backend whose upstream keeps a job by its handle after
// the gateway that submitted it stopped (ComfyUI's prompt ids), so that
// a restarted gateway follows the job to its end instead of failing it.
// Backends that cannot be asked about a job they did not submit (http,
// gradio) do not implement it.
type Reattacher interface {
	// Reattach waits, as Watch does, for the end of the job handle, which
	// another process submitted, and returns its result, outputs saved
	// and run time from the upstream's own start and end.
	Reattach(ctx context.Context, run *JobRun, handle string) (*JobResult, error)
}

// InputChecker is a Backend that can check a job's input with its
// upstream before the job is queued (ComfyUI's node definitions), so a
// value the upstream would refuse is a 422 at submit.
type InputChecker interface {
	// CheckInput returns EInputInvalid naming each input upstream would
	// refuse. Any other error means the upstream could not be asked; the
	// job is queued and the upstream decides.
	CheckInput(ctx context.Context, upstream string, input map[string]any) error
}

// BlobKey names the results of one prediction of one user.
type BlobKey struct {
	TenantID     string
	UserID       string
	PredictionID string
}

// Blob describes a stored result file.
type Blob struct {
	Name        string
	ContentType string
	Size        int64
	ModTime     time.Time
}

// BlobReader is an open result file: seekable, for Range requests.
type BlobReader interface {
	Read(p []byte) (int, error)
	Seek(offset int64, whence int) (int64, error)
	Close() error
}

// BlobStore keeps job results: files under data_dir/results on one node,
// object storage in cluster mode.
type BlobStore interface {
	// Put stores body as key's file name. EInvalid for a name that is
	// empty, has a path separator or starts with a dot.
	Put(ctx context.Context, key BlobKey, name, contentType string, body []byte) (*Blob, error)
	// Open opens key's file name. ENotFound when it does not exist.
	Open(ctx context.Context, key BlobKey, name string) (BlobReader, *Blob, error)
	// Delete removes every file of key; absent files are no error.
	Delete(ctx context.Context, key BlobKey) error
}

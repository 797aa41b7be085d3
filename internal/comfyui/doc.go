// Package comfyui runs job models on ComfyUI: a job is one prompt of an
// API-format workflow, its inputs bound to node fields, its files
// uploaded into the owner's own input subfolder, its progress read from
// ComfyUI's websocket and its outputs copied into the result store.
package comfyui

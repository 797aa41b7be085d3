package comfyui

import (
	"net/url"
	"strings"
)

// A raw workflow names files three ways. Save prefixes (filename_prefix)
// and loader fields (uploads, and the annotated names of ComfyUI's own
// loaders) are rewritten under the user's subfolder. Every other string
// a node takes may still be a path a node opens itself (a custom node's
// "video" or "folder_name", a URL to ComfyUI's own /view): a literal that
// reaches outside the user's files (absolute, a drive, "~/", a ".."
// step, or another user's tollgate/u… folder, also percent-encoded) is
// refused, and so is a link into a field whose name or /object_info
// hints say it is a path, since its value is known only when the
// workflow runs. A node that
// takes a path from a link into a field named otherwise is out of reach
// of these checks: such nodes are for the route's nodes rules to deny.

// foreignPath reports whether v, read as a path or URL, reaches outside
// the files of the user whose subfolder is folder.
func foreignPath(folder, v string) bool {
	for _, s := range []string{v, unescaped(v)} {
		s = strings.ToLower(strings.ReplaceAll(s, `\`, "/"))
		if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~/") || len(s) > 2 && s[1] == ':' && s[2] == '/' && s[0] >= 'a' && s[0] <= 'z' {
			return true
		}
		if strings.TrimSpace(s) == ".." {
			return true
		}
		if !strings.Contains(s, "/") {
			continue // words, not a path ("a tollgate at dusk", "wait .. what")
		}
		parts := strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune("/?&=#;, \t\r\n\"'", r) })
		own := strings.Split(strings.ToLower(folder), "/")
		for i, part := range parts {
			if part == ".." {
				return true
			}
			if part == own[0] && (i+1 >= len(parts) || parts[i+1] != own[1]) {
				return true // tollgate/u<someone else>, or the root of every user's folders
			}
		}
	}
	return false
}

// unescaped is v percent-decoded, or v when it does not decode.
func unescaped(v string) string {
	if s, err := url.QueryUnescape(v); err == nil {
		return s
	}
	return v
}

// pathWords are the words of a field name that say it is a path.
var pathWords = []string{"path", "file", "filename", "filepath", "folder", "directory", "dir", "url", "uri"}

// pathName reports whether a field's name says it takes a path.
func pathName(field string) bool {
	for _, w := range strings.FieldsFunc(strings.ToLower(field), func(r rune) bool { return r == '_' || r == '-' || r == ' ' }) {
		for _, p := range pathWords {
			if w == p {
				return true
			}
		}
	}
	return false
}

package media_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/media"
	"github.com/tollgate/tollgate/internal/media/mediatest"
)

// wav is a 16-bit mono PCM WAV of samples at rate, with an extra chunk
// before data as some writers put one; size overrides the data chunk's
// size field when not 0.
func wav(rate, samples int, size uint32) []byte {
	data := make([]byte, samples*2)
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+12+len(data)))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(rate), uint32(rate * 2), uint16(2), uint16(16)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("LIST")
	_ = binary.Write(&b, binary.LittleEndian, uint32(3))
	b.WriteString("abc\x00") // odd size, padded
	b.WriteString("data")
	if size == 0 {
		size = uint32(len(data))
	}
	_ = binary.Write(&b, binary.LittleEndian, size)
	b.Write(data)
	return b.Bytes()
}

func TestAudioDuration(t *testing.T) {
	t.Parallel()
	long := wav(24000, 24000*90, 0) // 90 s, longer than HeadSize
	tests := []struct {
		name       string
		head, tail []byte
		total      int64
		want       time.Duration
		ok         bool
	}{
		{"wav", wav(24000, 67200, 0), nil, 0, 2800 * time.Millisecond, true},
		{"wav from its head alone", long[:media.HeadSize], nil, int64(len(long)), 90 * time.Second, true},
		{"wav of a streaming writer", wav(16000, 8000, 0xffffffff), nil, int64(len(wav(16000, 8000, 0))), 500 * time.Millisecond, true},
		{"wav with no fmt", []byte("RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00abcd"), nil, 0, 0, false},
		{"flac", mediatest.FLAC(44100, 441000), nil, 0, 10 * time.Second, true},
		{"flac of unknown length", mediatest.FLAC(44100, 0), nil, 0, 0, false},
		{"ogg opus", mediatest.Opus(48000 * 3), mediatest.Opus(48000 * 3), 0, 3 * time.Second, true},
		{"ogg opus without its end", mediatest.Opus(48000 * 3)[:40], nil, 0, 0, false},
		{"ogg vorbis", mediatest.Vorbis(22050, 22050*4+11025), mediatest.Vorbis(22050, 22050*4+11025), 0, 4500 * time.Millisecond, true},
		{"mp3 cbr", mediatest.MP3CBR(160000), nil, int64(len(mediatest.MP3CBR(160000))), 10 * time.Second, true},
		{"mp3 xing", mediatest.MP3Xing(100), nil, 0, 100 * 1152 * time.Second / 44100, true},
		{"png", []byte("\x89PNG\r\n\x1a\n0000000000000000"), nil, 0, 0, false},
		{"empty", nil, nil, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := media.AudioDuration(tc.head, tc.tail, tc.total)
			if ok != tc.ok || got != tc.want {
				t.Errorf("AudioDuration = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestMillis(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]int64{2612244897 * time.Nanosecond: 2612, 1500 * time.Microsecond: 2, 0: 0} {
		if got := media.Millis(d); got != want {
			t.Errorf("Millis(%v) = %d, want %d", d, got, want)
		}
	}
}

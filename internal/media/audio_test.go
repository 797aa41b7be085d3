package media_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/media"
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

// flac is a FLAC stream's start: the marker and a STREAMINFO block.
func flac(rate int, samples int64) []byte {
	b := []byte("fLaC\x80\x00\x00\x22") // last block, STREAMINFO, 34 bytes
	si := make([]byte, 34)
	si[10] = byte(rate >> 12)
	si[11] = byte(rate >> 4)
	si[12] = byte(rate<<4) | 0x02 // 2 channels - 1 = 1, high bits of bps
	si[13] = 0xf0 | byte(samples>>32)
	binary.BigEndian.PutUint32(si[14:], uint32(samples))
	return append(append(b, si...), make([]byte, 100)...)
}

// oggPage is one Ogg page of stream serial holding packet.
func oggPage(serial uint32, seq uint32, granule int64, flags byte, packet []byte) []byte {
	var segs []byte
	n := len(packet)
	for n >= 255 {
		segs = append(segs, 255)
		n -= 255
	}
	segs = append(segs, byte(n))
	h := make([]byte, 27)
	copy(h, "OggS")
	h[5] = flags
	binary.LittleEndian.PutUint64(h[6:], uint64(granule))
	binary.LittleEndian.PutUint32(h[14:], serial)
	binary.LittleEndian.PutUint32(h[18:], seq)
	h[26] = byte(len(segs))
	page := append(append(h, segs...), packet...)
	binary.LittleEndian.PutUint32(page[22:], crc32.ChecksumIEEE(page)) // not Ogg's CRC; readers of length ignore it
	return page
}

// opus is an Ogg Opus file of the given 48 kHz granules after a pre-skip
// of 312, with a second stream's page after the last audio page.
func opus(granule int64) []byte {
	head := append([]byte("OpusHead\x01\x01"), 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0) // pre-skip 312, 48 kHz
	b := oggPage(7, 0, 0, 2, head)
	b = append(b, oggPage(7, 1, 0, 0, []byte("OpusTags........"))...)
	b = append(b, oggPage(7, 2, granule/2, 0, make([]byte, 900))...)
	b = append(b, oggPage(7, 3, 312+granule, 4, make([]byte, 600))...)
	return append(b, oggPage(9, 0, 999999999, 4, make([]byte, 30))...)
}

func vorbis(rate uint32, samples int64) []byte {
	id := make([]byte, 30)
	copy(id, "\x01vorbis")
	binary.LittleEndian.PutUint32(id[12:], rate)
	b := oggPage(3, 0, 0, 2, id)
	b = append(b, oggPage(3, 1, samples, 4, make([]byte, 2000))...)
	return append(b, oggPage(3, 2, -1, 0, make([]byte, 10))...) // a page ending no packet
}

func mp3CBR(n int) []byte {
	b := []byte("ID3\x03\x00\x00\x00\x00\x00\x0a")
	b = append(b, make([]byte, 10)...)
	frame := make([]byte, n)
	copy(frame, []byte{0xff, 0xfb, 0x90, 0x64})
	return append(b, frame...)
}

func mp3Xing(frames uint32) []byte {
	b := make([]byte, 417)
	copy(b, []byte{0xff, 0xfb, 0x90, 0x04})
	copy(b[36:], "Xing")
	binary.BigEndian.PutUint32(b[40:], 1)
	binary.BigEndian.PutUint32(b[44:], frames)
	return b
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
		{"flac", flac(44100, 441000), nil, 0, 10 * time.Second, true},
		{"flac of unknown length", flac(44100, 0), nil, 0, 0, false},
		{"ogg opus", opus(48000 * 3), opus(48000 * 3), 0, 3 * time.Second, true},
		{"ogg opus without its end", opus(48000 * 3)[:40], nil, 0, 0, false},
		{"ogg vorbis", vorbis(22050, 22050*4+11025), vorbis(22050, 22050*4+11025), 0, 4500 * time.Millisecond, true},
		{"mp3 cbr", mp3CBR(160000), nil, int64(len(mp3CBR(160000))), 10 * time.Second, true},
		{"mp3 xing", mp3Xing(100), nil, 0, 100 * 1152 * time.Second / 44100, true},
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

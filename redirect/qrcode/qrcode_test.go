package qrcode

import (
	"bytes"
	"encoding/xml"
	"image"
	"image/png"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
)

// decode reads a QR code back with ZXing's decoder (a port independent of
// the encoder), told that the image is a generated code (PURE_BARCODE):
// the port's detector for photos misses the finder patterns of some
// clean codes at 3 to 5 pixels per module, which zbarimg and phone
// cameras read.
func decode(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatalf("cannot binarize image: %s", err)
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("cannot decode QR code: %s", err)
	}
	return res.GetText()
}

func TestPNGDecodes(t *testing.T) {
	for _, text := range []string{
		"https://go.example.com/AB3KX9QZ",
		"http://127.0.0.1:8080/spring-launch_2026",
		"https://go.example.com/" + strings.Repeat("x", 200),
	} {
		c, err := New(text)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{2 * c.Modules(), DefaultSize, 301, 1024} {
			if size < MinSize {
				continue
			}
			b, err := c.PNG(size)
			if err != nil {
				t.Fatalf("unexpected error for %q at %d: %s", text, size, err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("unexpected PNG for %q at %d: %s", text, size, err)
			}
			if r := img.Bounds(); r.Dx() != size || r.Dy() != size {
				t.Fatalf("unexpected image size for %q; got %v; want %dx%d", text, r, size, size)
			}
			if got := decode(t, img); got != text {
				t.Fatalf("unexpected text decoded at %d; got %q; want %q", size, got, text)
			}
		}
	}
}

func TestSVG(t *testing.T) {
	c, err := New("https://go.example.com/AB3KX9QZ")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.SVG(300)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var root *xml.StartElement
	paths := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %s\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == nil {
				se := se.Copy()
				root = &se
			}
			if se.Name.Local == "path" {
				paths++
			}
		}
	}
	attr := map[string]string{}
	for _, a := range root.Attr {
		attr[a.Name.Local] = a.Value
	}
	m := c.Modules()
	if root.Name.Local != "svg" || root.Name.Space != "http://www.w3.org/2000/svg" || attr["width"] != "300" || attr["height"] != "300" ||
		attr["viewBox"] != "0 0 "+strconv.Itoa(m)+" "+strconv.Itoa(m) || paths != 1 {
		t.Fatalf("unexpected SVG root %v %v with %d paths", root.Name, attr, paths)
	}
}

func TestCheckSize(t *testing.T) {
	c, err := New("https://go.example.com/AB3KX9QZ")
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{-1, 0, MinSize - 1, MaxSize + 1, 1 << 40} {
		if _, err := c.PNG(size); err == nil {
			t.Fatalf("unexpected PNG of size %d", size)
		}
		if _, err := c.SVG(size); err == nil {
			t.Fatalf("unexpected SVG of size %d", size)
		}
	}
	long, err := New("https://go.example.com/" + strings.Repeat("x", 1000))
	if err != nil {
		t.Fatal(err)
	}
	if err := long.CheckSize(MinSize); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Fatalf("unexpected error for a large code at %d pixels: %v", MinSize, err)
	}
}

/* Writes a YCCK JPEG (4 components, Adobe transform 2) of a synthetic CMYK
 * pattern with the system libjpeg-turbo: cjpeg cannot make one. Used once by
 * make_corpus.py; usage: ycck OUT.jpg WIDTH HEIGHT */
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  int w = atoi(argv[2]), h = atoi(argv[3]);
  FILE *f = fopen(argv[1], "wb");
  if (!f) return 1;
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr e;
  c.err = jpeg_std_error(&e);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 4;
  c.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_set_colorspace(&c, JCS_YCCK);
  jpeg_set_quality(&c, 85, TRUE);
  jpeg_start_compress(&c, TRUE);
  JSAMPLE *row = malloc(4 * w);
  unsigned s = 12345;
  while (c.next_scanline < c.image_height) {
    int y = c.next_scanline;
    for (int x = 0; x < w; x++) {
      s = s * 1103515245u + 12345u;
      int n = (s >> 16) % 17;
      row[4 * x] = (JSAMPLE)((x * 255 / w + n) & 255);
      row[4 * x + 1] = (JSAMPLE)((y * 255 / h + n) & 255);
      row[4 * x + 2] = (JSAMPLE)(((x + y) * 3 + n) & 255);
      row[4 * x + 3] = (JSAMPLE)(((x / 9 + y / 7) % 2) * 90 + n);
    }
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  fclose(f);
  return 0;
}

// A small, self-contained QR code encoder (ISO/IEC 18004): byte mode (UTF-8), versions 1-40, error correction L, M,
// Q or H, drawn as an inline <svg> through DOM calls, so the page needs no data: image, no remote service and no
// inline style. The version is the smallest that fits; the mask is chosen by the same penalty rules as the `qrcode`
// npm package, so both draw the same matrix for the same text (test/browser/totp.test.ts compares them).
// The block tables are those of the QR specification (as tabulated by the `qrcode` package, MIT).

const LEVELS = { L: 0, M: 1, Q: 2, H: 3 };
/** The two format-information bits of each level (L 01, M 00, Q 11, H 10). */
const LEVEL_BITS = [1, 0, 3, 2];

// Per version (1-40), per level L, M, Q, H: the number of error-correction blocks, and the total number of
// error-correction codewords.
const EC_BLOCKS = [
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 1, 2, 2, 4, 1, 2, 4, 4, 2, 4, 4, 4, 2, 4, 6, 5, 2, 4, 6, 6, 2, 5, 8, 8, 4, 5, 8,
  8, 4, 5, 8, 11, 4, 8, 10, 11, 4, 9, 12, 16, 4, 9, 16, 16, 6, 10, 12, 18, 6, 10, 17, 16, 6, 11, 16, 19, 6, 13, 18, 21,
  7, 14, 21, 25, 8, 16, 20, 25, 8, 17, 23, 25, 9, 17, 23, 34, 9, 18, 25, 30, 10, 20, 27, 32, 12, 21, 29, 35, 12, 23, 34,
  37, 12, 25, 34, 40, 13, 26, 35, 42, 14, 28, 38, 45, 15, 29, 40, 48, 16, 31, 43, 51, 17, 33, 45, 54, 18, 35, 48, 57,
  19, 37, 51, 60, 19, 38, 53, 63, 20, 40, 56, 66, 21, 43, 59, 70, 22, 45, 62, 74, 24, 47, 65, 77, 25, 49, 68, 81,
];
const EC_CODEWORDS = [
  7, 10, 13, 17, 10, 16, 22, 28, 15, 26, 36, 44, 20, 36, 52, 64, 26, 48, 72, 88, 36, 64, 96, 112, 40, 72, 108, 130, 48,
  88, 132, 156, 60, 110, 160, 192, 72, 130, 192, 224, 80, 150, 224, 264, 96, 176, 260, 308, 104, 198, 288, 352, 120,
  216, 320, 384, 132, 240, 360, 432, 144, 280, 408, 480, 168, 308, 448, 532, 180, 338, 504, 588, 196, 364, 546, 650,
  224, 416, 600, 700, 224, 442, 644, 750, 252, 476, 690, 816, 270, 504, 750, 900, 300, 560, 810, 960, 312, 588, 870,
  1050, 336, 644, 952, 1110, 360, 700, 1020, 1200, 390, 728, 1050, 1260, 420, 784, 1140, 1350, 450, 812, 1200, 1440,
  480, 868, 1290, 1530, 510, 924, 1350, 1620, 540, 980, 1440, 1710, 570, 1036, 1530, 1800, 570, 1064, 1590, 1890, 600,
  1120, 1680, 1980, 630, 1204, 1770, 2100, 660, 1260, 1860, 2220, 720, 1316, 1950, 2310, 750, 1372, 2040, 2430,
];

// GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1.
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
for (let i = 0, x = 1; i < 255; i++) {
  EXP[i] = x;
  LOG[x] = i;
  x <<= 1;
  if (x & 0x100) x ^= 0x11d;
}
for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
const gfMul = (a, b) => (a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]);

/** The Reed-Solomon generator polynomial of `degree`, highest coefficient first (which is 1). */
function generator(degree) {
  let poly = [1];
  for (let i = 0; i < degree; i++) {
    const next = new Array(poly.length + 1).fill(0);
    for (let j = 0; j < poly.length; j++) {
      next[j] ^= poly[j];
      next[j + 1] ^= gfMul(poly[j], EXP[i]);
    }
    poly = next;
  }
  return poly;
}

/** The `degree` error-correction codewords of `data`: the remainder of data·x^degree divided by the generator. */
function reedSolomon(data, degree) {
  const gen = generator(degree);
  const rest = new Array(degree).fill(0);
  for (const byte of data) {
    const factor = byte ^ rest.shift();
    rest.push(0);
    for (let i = 0; i < degree; i++) rest[i] ^= gfMul(gen[i + 1], factor);
  }
  return rest;
}

const sizeOf = (version) => version * 4 + 17;

/** All modules of a version that carry codewords (data and error correction). */
function rawDataModules(version) {
  let modules = (16 * version + 128) * version + 64;
  if (version >= 2) {
    const align = Math.floor(version / 7) + 2;
    modules -= (25 * align - 10) * align - 55;
    if (version >= 7) modules -= 36;
  }
  return modules;
}

const totalCodewords = (version) => Math.floor(rawDataModules(version) / 8);
const dataCodewords = (version, level) => totalCodewords(version) - EC_CODEWORDS[(version - 1) * 4 + level];

/** Row/column centres of the alignment patterns. */
function alignmentCoords(version) {
  if (version === 1) return [];
  const count = Math.floor(version / 7) + 2;
  const size = sizeOf(version);
  const step = size === 145 ? 26 : Math.ceil((size - 13) / (2 * count - 2)) * 2;
  const coords = [size - 7];
  for (let i = 1; i < count - 1; i++) coords.push(coords[i - 1] - step);
  coords.push(6);
  return coords.reverse();
}

/** The remainder of `value` (already shifted) modulo the BCH generator `poly` of bit length `polyBits`. */
function bchRemainder(value, poly, polyBits) {
  let rest = value;
  while (rest.toString(2).length >= polyBits) rest ^= poly << (rest.toString(2).length - polyBits);
  return rest;
}

const formatBits = (level, mask) => {
  const data = (LEVEL_BITS[level] << 3) | mask;
  return ((data << 10) | bchRemainder(data << 10, 0x537, 11)) ^ 0x5412;
};
const versionBits = (version) => (version << 12) | bchRemainder(version << 12, 0x1f25, 13);

class Matrix {
  constructor(size) {
    this.size = size;
    this.dark = new Uint8Array(size * size);
    this.reserved = new Uint8Array(size * size);
  }
  get(row, col) {
    return this.dark[row * this.size + col];
  }
  set(row, col, dark, reserve = false) {
    this.dark[row * this.size + col] = dark ? 1 : 0;
    if (reserve) this.reserved[row * this.size + col] = 1;
  }
  isReserved(row, col) {
    return this.reserved[row * this.size + col] === 1;
  }
}

function drawFunctionPatterns(matrix, version) {
  const { size } = matrix;
  // Finder patterns and their separators.
  for (const [row, col] of [
    [0, 0],
    [size - 7, 0],
    [0, size - 7],
  ]) {
    for (let r = -1; r <= 7; r++) {
      if (row + r < 0 || row + r >= size) continue;
      for (let c = -1; c <= 7; c++) {
        if (col + c < 0 || col + c >= size) continue;
        const ring = Math.max(Math.abs(r - 3), Math.abs(c - 3));
        matrix.set(row + r, col + c, ring !== 2 && ring !== 4, true);
      }
    }
  }
  // Timing patterns.
  for (let i = 8; i < size - 8; i++) {
    matrix.set(i, 6, i % 2 === 0, true);
    matrix.set(6, i, i % 2 === 0, true);
  }
  // Alignment patterns, except where they would overlap a finder pattern.
  const coords = alignmentCoords(version);
  const last = coords.length - 1;
  coords.forEach((row, i) => {
    coords.forEach((col, j) => {
      if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0)) return;
      for (let r = -2; r <= 2; r++) {
        for (let c = -2; c <= 2; c++) matrix.set(row + r, col + c, Math.max(Math.abs(r), Math.abs(c)) !== 1, true);
      }
    });
  });
  // Format information (reserved now, written once the mask is known) and version information.
  drawFormat(matrix, 0, 0);
  if (version >= 7) {
    const bits = versionBits(version);
    for (let i = 0; i < 18; i++) {
      const dark = ((bits >> i) & 1) === 1;
      const a = Math.floor(i / 3);
      const b = (i % 3) + size - 11;
      matrix.set(a, b, dark, true);
      matrix.set(b, a, dark, true);
    }
  }
}

function drawFormat(matrix, level, mask) {
  const { size } = matrix;
  const bits = formatBits(level, mask);
  for (let i = 0; i < 15; i++) {
    const dark = ((bits >> i) & 1) === 1;
    // Along column 8: top-left, then bottom-left.
    if (i < 6) matrix.set(i, 8, dark, true);
    else if (i < 8) matrix.set(i + 1, 8, dark, true);
    else matrix.set(size - 15 + i, 8, dark, true);
    // Along row 8: top-right, then top-left.
    if (i < 8) matrix.set(8, size - i - 1, dark, true);
    else if (i < 9) matrix.set(8, 15 - i, dark, true);
    else matrix.set(8, 14 - i, dark, true);
  }
  // The dark module.
  matrix.set(size - 8, 8, true, true);
}

/** Places the codewords in the two-column zigzag, bottom-right first, skipping the function patterns. */
function drawCodewords(matrix, codewords) {
  const { size } = matrix;
  let bit = 0;
  const total = codewords.length * 8;
  let upward = true;
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    for (let k = 0; k < size; k++) {
      const row = upward ? size - 1 - k : k;
      for (const col of [right, right - 1]) {
        if (matrix.isReserved(row, col)) continue;
        const dark = bit < total && ((codewords[bit >> 3] >> (7 - (bit & 7))) & 1) === 1;
        matrix.set(row, col, dark);
        bit++;
      }
    }
    upward = !upward;
  }
}

const MASKS = [
  (i, j) => (i + j) % 2 === 0,
  (i) => i % 2 === 0,
  (_i, j) => j % 3 === 0,
  (i, j) => (i + j) % 3 === 0,
  (i, j) => (Math.floor(i / 2) + Math.floor(j / 3)) % 2 === 0,
  (i, j) => ((i * j) % 2) + ((i * j) % 3) === 0,
  (i, j) => (((i * j) % 2) + ((i * j) % 3)) % 2 === 0,
  (i, j) => (((i * j) % 3) + ((i + j) % 2)) % 2 === 0,
];

function applyMask(matrix, mask) {
  const { size } = matrix;
  const flip = MASKS[mask];
  for (let row = 0; row < size; row++) {
    for (let col = 0; col < size; col++) {
      if (!matrix.isReserved(row, col) && flip(row, col)) matrix.dark[row * size + col] ^= 1;
    }
  }
}

/** The penalty of a masked matrix: runs of five or more, 2x2 blocks, finder-like patterns, dark/light balance. */
function penalty(matrix) {
  const { size } = matrix;
  let points = 0;
  for (let a = 0; a < size; a++) {
    let runRow = 0;
    let runCol = 0;
    let lastRow = -1;
    let lastCol = -1;
    let bitsRow = 0;
    let bitsCol = 0;
    for (let b = 0; b < size; b++) {
      const inRow = matrix.get(a, b);
      const inCol = matrix.get(b, a);
      if (inRow === lastRow) runRow++;
      else {
        if (runRow >= 5) points += 3 + (runRow - 5);
        lastRow = inRow;
        runRow = 1;
      }
      if (inCol === lastCol) runCol++;
      else {
        if (runCol >= 5) points += 3 + (runCol - 5);
        lastCol = inCol;
        runCol = 1;
      }
      // 1:1:3:1:1 with four light modules on either side, in 11 modules.
      bitsRow = ((bitsRow << 1) & 0x7ff) | inRow;
      bitsCol = ((bitsCol << 1) & 0x7ff) | inCol;
      if (b >= 10 && (bitsRow === 0x5d0 || bitsRow === 0x05d)) points += 40;
      if (b >= 10 && (bitsCol === 0x5d0 || bitsCol === 0x05d)) points += 40;
    }
    if (runRow >= 5) points += 3 + (runRow - 5);
    if (runCol >= 5) points += 3 + (runCol - 5);
  }
  for (let row = 0; row < size - 1; row++) {
    for (let col = 0; col < size - 1; col++) {
      const sum =
        matrix.get(row, col) + matrix.get(row, col + 1) + matrix.get(row + 1, col) + matrix.get(row + 1, col + 1);
      if (sum === 0 || sum === 4) points += 3;
    }
  }
  let darkCount = 0;
  for (const module of matrix.dark) darkCount += module;
  points += Math.abs(Math.ceil((darkCount * 100) / matrix.dark.length / 5) - 10) * 10;
  return points;
}

/** The data codewords: mode, count, bytes, terminator, padding. */
function dataCodewordsOf(bytes, version, level) {
  const capacity = dataCodewords(version, level) * 8;
  const bits = [];
  const put = (value, length) => {
    for (let i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1);
  };
  put(0b0100, 4);
  put(bytes.length, version <= 9 ? 8 : 16);
  for (const byte of bytes) put(byte, 8);
  if (bits.length + 4 <= capacity) put(0, 4);
  while (bits.length % 8 !== 0) bits.push(0);
  const codewords = [];
  for (let i = 0; i < bits.length; i += 8) codewords.push(Number.parseInt(bits.slice(i, i + 8).join(''), 2));
  for (let pad = 0xec; codewords.length < capacity / 8; pad ^= 0xec ^ 0x11) codewords.push(pad);
  return codewords;
}

/** Splits the data into blocks, adds each block's error correction, and interleaves them. */
function interleave(data, version, level) {
  const blocks = EC_BLOCKS[(version - 1) * 4 + level];
  const total = totalCodewords(version);
  const ecPerBlock = EC_CODEWORDS[(version - 1) * 4 + level] / blocks;
  const longBlocks = total % blocks;
  const shortLength = Math.floor(total / blocks) - ecPerBlock;
  const dataBlocks = [];
  const ecBlocks = [];
  let offset = 0;
  for (let b = 0; b < blocks; b++) {
    const length = shortLength + (b < blocks - longBlocks ? 0 : 1);
    const block = data.slice(offset, offset + length);
    offset += length;
    dataBlocks.push(block);
    ecBlocks.push(reedSolomon(block, ecPerBlock));
  }
  const out = [];
  for (let i = 0; i <= shortLength; i++) {
    for (const block of dataBlocks) if (i < block.length) out.push(block[i]);
  }
  for (let i = 0; i < ecPerBlock; i++) for (const block of ecBlocks) out.push(block[i]);
  return out;
}

/**
 * Encodes `text` (UTF-8, byte mode) in the smallest version that holds it.
 * @param {string} text
 * @param {{ errorCorrectionLevel?: 'L' | 'M' | 'Q' | 'H' }} [options]
 * @returns {{ version: number, size: number, mask: number, errorCorrectionLevel: string, modules: Uint8Array }}
 *   `modules`: size × size, row by row, 1 for a dark module.
 */
export function encodeQr(text, options = {}) {
  const levelName = options.errorCorrectionLevel ?? 'M';
  const level = LEVELS[levelName];
  if (level === undefined) throw new Error(`QR: unknown error correction level ${levelName}`);
  const bytes = new TextEncoder().encode(text);
  let version = 1;
  while (version <= 40 && 4 + (version <= 9 ? 8 : 16) + bytes.length * 8 > dataCodewords(version, level) * 8) version++;
  if (version > 40) throw new Error('QR: the text is too long for a QR code');
  const codewords = interleave(dataCodewordsOf(bytes, version, level), version, level);
  const matrix = new Matrix(sizeOf(version));
  drawFunctionPatterns(matrix, version);
  drawCodewords(matrix, codewords);
  let best = 0;
  let lowest = Number.POSITIVE_INFINITY;
  for (let mask = 0; mask < 8; mask++) {
    drawFormat(matrix, level, mask);
    applyMask(matrix, mask);
    const points = penalty(matrix);
    applyMask(matrix, mask);
    if (points < lowest) {
      lowest = points;
      best = mask;
    }
  }
  applyMask(matrix, best);
  drawFormat(matrix, level, best);
  return { version, size: matrix.size, mask: best, errorCorrectionLevel: levelName, modules: matrix.dark };
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * The QR code of `text` as an <svg> element: dark modules on a light square with a quiet zone of four modules, one
 * path of unit squares (runs of a row merged), crisp at any size.
 * @param {string} text
 * @param {{ errorCorrectionLevel?: 'L' | 'M' | 'Q' | 'H', label?: string, document?: Document }} [options]
 */
export function qrSvg(text, options = {}) {
  const doc = options.document ?? document;
  const { size, modules, version, mask } = encodeQr(text, options);
  const quiet = 4;
  const full = size + 2 * quiet;
  const svg = doc.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${full} ${full}`);
  svg.setAttribute('shape-rendering', 'crispEdges');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', options.label ?? 'QR code');
  svg.setAttribute('data-version', String(version));
  svg.setAttribute('data-mask', String(mask));
  svg.setAttribute('data-size', String(size));
  const background = doc.createElementNS(SVG_NS, 'rect');
  background.setAttribute('width', String(full));
  background.setAttribute('height', String(full));
  background.setAttribute('fill', '#fff');
  const path = doc.createElementNS(SVG_NS, 'path');
  path.setAttribute('fill', '#000');
  path.setAttribute('d', modulesPath(size, modules, quiet));
  svg.append(background, path);
  return svg;
}

/** `M x y h n v 1 h -n z` for each horizontal run of dark modules. */
function modulesPath(size, modules, offset) {
  const parts = [];
  for (let row = 0; row < size; row++) {
    for (let col = 0; col < size; col++) {
      if (!modules[row * size + col]) continue;
      let run = 1;
      while (col + run < size && modules[row * size + col + run]) run++;
      parts.push(`M${col + offset} ${row + offset}h${run}v1h-${run}z`);
      col += run - 1;
    }
  }
  return parts.join('');
}

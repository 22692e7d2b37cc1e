/**
 * A generated C project built with make, for the demo, the tests and the build benchmark: `units`
 * files unit<i>.c, each including common.h and its group's header, explicit .o dependencies in the
 * Makefile, objects and the program in `objdir`.
 */
export interface CProjectOptions {
  units: number;
  /** Units per group header group<k>.h. Default 4. */
  groupSize?: number;
  /** Unit numbers to leave out (with their uses), as when a source is deleted. */
  omit?: readonly number[];
  /** Where objects and the program go, relative to the root ("." for in-tree). Default "obj". */
  objdir?: string;
  /** Lines of filler per unit, to make compiling take a realistic time. Default 0. */
  weight?: number;
}

export function unitName(i: number): string {
  return `unit${String(i).padStart(3, '0')}`;
}

export function cProject(options: CProjectOptions): Record<string, string> {
  const { units, groupSize = 4, omit = [], objdir = 'obj', weight = 0 } = options;
  const prefix = objdir === '.' ? '' : `${objdir}/`;
  const kept = Array.from({ length: units }, (_, i) => i + 1).filter((i) => !omit.includes(i));
  const group = (i: number) => Math.ceil(i / groupSize);
  const files: Record<string, string> = {
    'common.h': '#ifndef COMMON_H\n#define COMMON_H\n#define SCALE 3\n#endif\n',
  };
  for (let g = 1; g <= group(units); g++) files[`group${g}.h`] = `#define GROUP_${g} ${g * 100}\n`;
  for (const i of kept) {
    // Filler the compiler cannot drop (each function feeds the next), for realistic compile times.
    const filler = Array.from({ length: weight }, (_, k) =>
      `static int filler${k}(int x) { int y = x${k > 0 ? ` + filler${k - 1}(x)` : ''}; for (int j = 0; j < ${k % 7 + 2}; j++) y = y * 31 + j; return y; }`).join('\n');
    const use = weight > 0 ? ` + filler${weight - 1}(0) * 0` : '';
    files[`${unitName(i)}.c`] = `#include "common.h"\n#include "group${group(i)}.h"\n${filler}\n`
      + `int ${unitName(i)}(void) { return ${i} * SCALE + GROUP_${group(i)}${use}; }\n`;
  }
  files['main.c'] = `#include <stdio.h>\n${kept.map((i) => `int ${unitName(i)}(void);`).join('\n')}\n`
    + `int main(void) { long sum = 0;\n${kept.map((i) => `  sum += ${unitName(i)}();`).join('\n')}\n`
    + '  printf("%ld\\n", sum); return 0; }\n';
  const objects = ['main', ...kept.map(unitName)].map((name) => `${prefix}${name}.o`);
  const mkdir = objdir === '.' ? '' : `\t@mkdir -p ${objdir}\n`;
  files.Makefile = `CC ?= cc\nCFLAGS ?= -O1\nPREFIX ?= /usr/local\nOBJS = ${objects.join(' ')}\n\n`
    + `${prefix}prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n`
    + `install: ${prefix}prog\n\tmkdir -p $(PREFIX)/bin\n\tcp ${prefix}prog $(PREFIX)/bin/prog\n\n`
    + `${prefix}main.o: main.c\n${mkdir}\t$(CC) $(CFLAGS) -c -o $@ $<\n\n`
    + kept.map((i) => `${prefix}${unitName(i)}.o: ${unitName(i)}.c common.h group${group(i)}.h\n${mkdir}`
      + `\t$(CC) $(CFLAGS) -c -o $@ $<\n`).join('\n');
  return files;
}

/** The sources that make compiled (from its echoed commands), and whether it linked. */
export function parseMakeOutput(output: string): { compiled: string[]; linked: boolean } {
  const compiled = [...output.matchAll(/ -c -o \S+ (?:\S*\/)?(\S+\.c)$/gm)].map((m) => m[1]!).sort();
  const linked = /-o \S*prog /m.test(output);
  return { compiled, linked };
}

/** The sum the program prints, computed the same way, to check a build's output. */
export function expectedOutput(options: CProjectOptions): string {
  const { units, groupSize = 4, omit = [] } = options;
  let sum = 0;
  for (let i = 1; i <= units; i++) if (!omit.includes(i)) sum += i * 3 + Math.ceil(i / groupSize) * 100;
  return `${sum}\n`;
}

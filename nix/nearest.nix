/**
  The valid name nearest to a misspelled one, or null when none is close: edit distance after
  folding case and dropping `-` and `_`, so `cacheDirs`, `cache_dirs` and `cache-dir` all find
  `cache-dirs`. Ties go to the first name in `names`.

  Type: [ string ] -> string -> string or null

  Example:
    import ./nearest.nix [ "cache-dirs" "s3-bucket" ] "s3bucket"  # => "s3-bucket"
*/
names: wanted:
let
  inherit (builtins) elemAt foldl' genList head length replaceStrings stringLength substring;

  upper = genList (i: substring i 1 "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_") 28;
  lower = genList (i: substring i 1 "abcdefghijklmnopqrstuvwxyz") 26 ++ [ "" "" ];
  fold = replaceStrings upper lower;
  chars = s: genList (i: substring i 1 s) (stringLength s);
  min = a: b: if a < b then a else b;

  # Levenshtein distance, one row of the table per character of `a`.
  distance = a: b:
    let
      bs = chars b;
      n = length bs;
      step = row: ca: foldl' (acc: j:
        acc ++ [ (min (min (elemAt row (j + 1) + 1) (elemAt acc j + 1))
          (elemAt row j + (if ca == elemAt bs j then 0 else 1))) ]) [ (head row + 1) ] (genList (j: j) n);
    in elemAt (foldl' step (genList (j: j) (n + 1)) (chars a)) n;

  target = fold wanted;
  scored = map (name: { inherit name; d = distance target (fold name); }) names;
  best = foldl' (a: b: if b.d < a.d then b else a) (head scored) scored;
  # More edits than a third of the name (at least 2) is another word, not a typo.
  close = best.d <= (if stringLength target > 6 then stringLength target / 3 else 2);
in
if names != [ ] && close then best.name else null

"""A run's summary: what one batch loaded, rejected and checked, as the lines etl.py prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import drift, loads


@dataclass
class StagedTable:
    table: str
    objects: int
    rows: int
    rejected: int


@dataclass
class RunSummary:
    target: str
    batch_id: int | None = None
    new_objects: int = 0
    known_objects: int = 0
    gone_objects: list[str] = field(default_factory=list)  # loaded, and no longer in their prefix
    held_back: list[str] = field(default_factory=list)     # failed a freeze batch, unchanged since
    replaced_events: int = 0
    staged: list[StagedTable] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    songplays_matched: int = 0
    songplays_recovered_by_repair: int = 0
    text_repairs: int = 0
    errors: list[loads.LoadError] = field(default_factory=list)
    checks_passed: int = 0
    checks_scope: str = ""
    seconds: float = 0.0
    # Redshift logs the records whose invalid UTF-8 it replaced only for the first 100 rows
    # per slice of each COPY (AWS: SYS_COPY_REPLACEMENTS, STL_REPLACEMENTS): a floor there.
    replacements_capped: bool = False
    schema_contract: str = "report"
    drift: list[drift.Change] = field(default_factory=list)

    @property
    def rejected(self) -> list[loads.LoadError]:
        return [e for e in self.errors if e.disposition == loads.REJECTED]

    def gone_lines(self, named: int = 10) -> list[str]:
        if not self.gone_objects:
            return []
        out = [f"  source files gone since they were loaded: {len(self.gone_objects):,}; what they loaded stays "
               "(etl.py --rebuild loads only the files there are)"]
        out += [f"    {url}" for url in self.gone_objects[:named]]
        if len(self.gone_objects) > named:
            out.append(f"    … and {len(self.gone_objects) - named:,} more (loaded_objects lists every file loaded)")
        return out

    def held_back_lines(self) -> list[str]:
        if not self.held_back:
            return []
        return [f"  held back under the freeze schema contract: {len(self.held_back):,} files a batch failed on "
                "and that are unchanged since (fix them, or set [ETL] SCHEMA_CONTRACT = report to load them):",
                *(f"    {url}" for url in self.held_back[:10])]

    def lines(self) -> list[str]:
        if self.batch_id is None:
            out = [f"Nothing new to load: all {self.known_objects:,} source files are loaded already "
                   f"({self.seconds:.1f} s on {self.target})", *self.gone_lines(), *self.held_back_lines()]
            if self.checks_scope:  # --full-checks: the gate ran on the warehouse as it is
                out.append(f"  quality gate: all {self.checks_passed} checks passed "
                           f"(on {self.checks_scope})")
            return out
        out = [f"ETL batch {self.batch_id} published in {self.seconds:.1f} s on {self.target}",
               f"  new or changed source files: {self.new_objects:,} (already loaded: {self.known_objects:,})"]
        if self.replaced_events:
            out.append(f"  events replaced by their changed files' versions: {self.replaced_events:,}")
        out += self.gone_lines() + self.held_back_lines()
        for staged in self.staged:
            out.append(f"  staged {staged.table:<15} {staged.rows:>10,} rows from {staged.objects:,} files"
                       f"  ({staged.rejected:,} rejected)")
        out.append("  tables:")
        for table, count in self.rows.items():
            out.append(f"    {table:<12} {count:>10,}")
        plays = self.rows.get("songplays", 0)
        share = 100.0 * self.songplays_matched / plays if plays else 0.0
        out.append(f"  songplays matched to the catalog: {self.songplays_matched:,} of {plays:,} ({share:.1f}%),"
                   f" {self.songplays_recovered_by_repair:,} of this run's thanks to repairing"
                   f" double-encoded UTF-8 ({self.text_repairs:,} names repaired)")
        replaced = len(self.errors) - len(self.rejected)
        capped = " or more: Redshift logs only the first 100 rows per slice" if self.replacements_capped else ""
        out.append(f"  bad records: {len(self.rejected):,} rejected"
                   + (f", {replaced:,} loaded with invalid characters replaced{capped}" if replaced else "")
                   + (" (see table load_errors)" if self.errors else ""))
        for error in self.errors[:5]:
            where = f"{error.source}:{error.line_number}" if error.line_number else error.source
            out.append(f"    {where}: {error.reason}")
        out += drift.summary_lines(self.drift, self.schema_contract)
        out.append(f"  quality gate: all {self.checks_passed} checks passed "
                   f"(on {self.checks_scope})")
        return out

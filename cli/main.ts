// The kiln command line (placeholder until the CLI issue lands; see cli/commands).
process.stdout.write("kiln\n");

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/smartlogs/audit-worker/config"
)

func newConfigCommand(configPath *string) *cobra.Command {
	cfgCmd := &cobra.Command{
		Use:   "config",
		Short: "Validate, show or encrypt a configuration; print its JSON Schema",
		Long: `The configuration is a JSON file in the original worker's shape (see the README's
Configuration reference and "audit-worker config schema"). String values written
as ${NAME} are taken from the environment variable NAME. A file encrypted with
"audit-worker config encrypt" (the original's AES-256-GCM secure-storage format)
is decrypted with AUDIT_CONFIG_PASSWORD and AUDIT_CONFIG_SALT.

FILE defaults to --config, then $CONFIG_PATH: a path, a file:// URL or an
s3://bucket/key URL (standard AWS credential chain; AWS_ENDPOINT_URL_S3 for an
S3-compatible store).`,
	}

	validate := &cobra.Command{
		Use:   "validate [FILE]",
		Short: `Check a configuration: print "valid", or every broken rule and exit non-zero`,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := configFile(*configPath, args)
			if err != nil {
				return err
			}
			if path == "" {
				return errors.New("no configuration to validate: give FILE, --config or CONFIG_PATH")
			}
			_, err = loadConfigRef(cmd.Context(), path)
			var ce *config.Error
			if errors.As(err, &ce) {
				// One rule per line on stdout, so that scripts and CI logs can
				// read them; the summary goes to stderr as the command's error.
				for _, p := range ce.Problems {
					fmt.Fprintln(cmd.OutOrStdout(), p.String())
				}
				return fmt.Errorf("%s: invalid configuration (%d broken %s)", path, len(ce.Problems), plural(len(ce.Problems), "rule", "rules"))
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "valid")
			return nil
		},
	}

	show := &cobra.Command{
		Use:   "show [FILE]",
		Short: "Print the effective configuration (defaults applied, secrets masked) as JSON",
		Long: `Print the configuration the worker would run with: the file with every default
applied, or the embedded default when there is no file. Passwords, keys, API keys
and the secrets inside URLs (the user-information password, and parameters such
as password=, sslpassword=, token= or key=) are shown as ***. Sections the
worker does not use are not shown.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := configFile(*configPath, args)
			if err != nil {
				return err
			}
			cfg := config.Default()
			if path != "" {
				if cfg, err = loadConfigRef(cmd.Context(), path); err != nil {
					return err
				}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false) // connection strings keep their & readable
			return enc.Encode(cfg.Masked())
		},
	}

	schema := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema (draft 2020-12) of the configuration file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.Schema())
			return err
		},
	}

	var noValidate bool
	encrypt := &cobra.Command{
		Use:   "encrypt",
		Short: "Encrypt a configuration read on stdin to stdout (AES-256-GCM, key from AUDIT_CONFIG_PASSWORD and AUDIT_CONFIG_SALT)",
		Long: `Read a configuration on stdin and write it encrypted to stdout in the original's
secure-storage format: {"algorithm":"AES-256-GCM","iv":…,"data":…,"authTag":…},
all hex, with the key PBKDF2-HMAC-SHA256(AUDIT_CONFIG_PASSWORD, hex-decoded
AUDIT_CONFIG_SALT, 100000 iterations). The worker and "config validate" decrypt
it with the same two variables.

The configuration is validated first (with this environment's ${NAME} values);
--no-validate encrypts it as it is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plain, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
			if config.IsEncrypted(plain) {
				return errors.New("the input is already an encrypted configuration")
			}
			if !noValidate {
				if _, err := config.Parse(plain); err != nil {
					return fmt.Errorf("not encrypted: %w (--no-validate encrypts it anyway)", err)
				}
			}
			password, salt, err := config.KeyMaterialFromEnv()
			if err != nil {
				return err
			}
			enc, err := config.EncryptDocument(plain, password, salt)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(enc)
			return err
		},
	}
	encrypt.Flags().BoolVar(&noValidate, "no-validate", false,
		"encrypt without validating (e.g. when its ${NAME} variables are only set where the worker runs)")

	cfgCmd.AddCommand(validate, show, schema, encrypt)
	return cfgCmd
}

// configFile is the configuration a config subcommand works on: its argument,
// else --config / $CONFIG_PATH.
func configFile(configPath string, args []string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	return configPath, nil
}

// loadConfigRef reads and parses one configuration from a path, file:// or s3://
// reference, without the worker's cache: these commands check the source itself.
func loadConfigRef(ctx context.Context, ref string) (config.Config, error) {
	src, err := config.OpenSource(ref, config.SourceOptions{})
	if err != nil {
		return config.Config{}, err
	}
	doc, _, err := src.Fetch(ctx, "")
	if err != nil {
		return config.Config{}, fmt.Errorf("read %s: %w", src, err)
	}
	return config.Parse(doc)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
